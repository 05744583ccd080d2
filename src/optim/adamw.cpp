// AdamW state management: per-parameter layout choice, paging, step dispatch, state dict.
#include "optim/adamw.h"

#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "optim/adamw_ops.h"
#include "optim/adamw_ref.h"

#ifdef QLORA_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace qlora::optim {

void validate(const OptimOptions& o) {
    QLORA_CHECK(o.beta1 >= 0.0 && o.beta1 < 1.0, "optim.beta1 must be in [0, 1), got ", o.beta1);
    QLORA_CHECK(o.beta2 >= 0.0 && o.beta2 < 1.0, "optim.beta2 must be in [0, 1), got ", o.beta2);
    QLORA_CHECK(o.eps > 0.0 && std::isfinite(o.eps), "optim.eps must be > 0, got ", o.eps);
    QLORA_CHECK(o.weight_decay >= 0.0 && std::isfinite(o.weight_decay),
                "optim.weight_decay must be >= 0, got ", o.weight_decay);
    QLORA_CHECK(o.paged_min_numel >= 0, "optim.paged_min_numel must be >= 0, got ",
                o.paged_min_numel);
    QLORA_CHECK(o.min_8bit_numel >= 0, "optim.min_8bit_numel must be >= 0, got ", o.min_8bit_numel);
}

at::Tensor& AdamW::ParamState::get(const std::string& key) {
    for (auto& [k, t] : tensors) {
        if (k == key) return t;
    }
    QLORA_FAIL("AdamW: internal: no state named ", key);
}

AdamW::AdamW(std::vector<at::Tensor> params, OptimOptions options, AdamwLayout layout,
             std::string name)
    : params_(std::move(params)), options_(options), layout_(layout), name_(std::move(name)) {
    validate(options_);
    states_.reserve(params_.size());
    for (size_t i = 0; i < params_.size(); ++i) {
        const at::Tensor& p = params_[i];
        QLORA_CHECK(p.defined(), name_, ": parameter ", i, " is undefined");
        QLORA_CHECK(p.scalar_type() == at::kFloat, name_, ": parameter ", i,
                    " must be float32 (LoRA parameters are kept in fp32), got ", p.scalar_type());
        QLORA_CHECK(p.is_contiguous(), name_, ": parameter ", i, " must be contiguous");
        states_.push_back(make_state(p));
    }
}

at::Tensor AdamW::make_tensor(ParamState& st, int64_t numel, at::ScalarType dtype,
                              const c10::Device& device, bool page) {
    if (page) {
        st.pages.push_back(PagedBuffer::allocate_managed({numel}, dtype, device));
        return st.pages.back().as_tensor();
    }
    return at::zeros({numel}, at::TensorOptions().dtype(dtype).device(device));
}

AdamW::ParamState AdamW::make_state(const at::Tensor& param) {
    ParamState st;
    const int64_t n = param.numel();
    bool page = layout_.paged && n >= options_.paged_min_numel;
    if (page && !param.is_cuda()) {
        log_warn_once("optim.paged_on_cpu",
                      name_ +
                          ": parameters are on the CPU, so optimizer states are ordinary "
                          "host tensors (paging needs CUDA managed memory)");
        page = false;
    }
    st.eight_bit = layout_.eight_bit && n >= options_.min_8bit_numel;
    const c10::Device device = param.device();
    if (st.eight_bit) {
        // Codes 0 with absmax 0 decode to 0, as bitsandbytes initialises them.
        const int64_t blocks = state_blocks(n);
        st.tensors.emplace_back("m_codes", make_tensor(st, n, at::kByte, device, page));
        st.tensors.emplace_back("m_absmax", at::zeros({blocks}, param.options().dtype(at::kFloat)));
        st.tensors.emplace_back("v_codes", make_tensor(st, n, at::kByte, device, page));
        st.tensors.emplace_back("v_absmax", at::zeros({blocks}, param.options().dtype(at::kFloat)));
    } else {
        st.tensors.emplace_back("m", make_tensor(st, n, at::kFloat, device, page));
        st.tensors.emplace_back("v", make_tensor(st, n, at::kFloat, device, page));
    }
    return st;
}

void AdamW::step(double lr) {
    QLORA_CHECK(std::isfinite(lr) && lr >= 0.0, name_,
                ": learning rate must be finite and >= 0, got ", lr);
    at::NoGradGuard no_grad;
    bool touched_pages = false;
    for (size_t i = 0; i < params_.size(); ++i) {
        at::Tensor& p = params_[i];
        const at::Tensor& grad_ref = p.grad();
        if (!grad_ref.defined()) continue;  // as torch: no gradient, no update, no step count
        at::Tensor grad = grad_ref.contiguous();
        ParamState& st = states_[i];
        st.step += 1;
        const AdamwScalars s = adamw_scalars(lr, options_.beta1, options_.beta2, options_.eps,
                                             options_.weight_decay, st.step);
        for (const PagedBuffer& page : st.pages) page.prefetch_to_device();
        touched_pages = touched_pages || !st.pages.empty();
        if (st.eight_bit) {
            adamw8bit_step(grad, p, st.get("m_codes"), st.get("v_codes"), st.get("m_absmax"),
                           st.get("v_absmax"), s);
        } else {
            adamw_step(grad, p, st.get("m"), st.get("v"), s);
        }
    }
#ifdef QLORA_WITH_CUDA
    // As bitsandbytes: the host may touch managed pages next (eviction, state_dict), so finish
    // first.
    if (touched_pages) {
        cudaError_t err = cudaDeviceSynchronize();
        QLORA_RUNTIME_CHECK(err == cudaSuccess, name_,
                            ": CUDA error after the update: ", cudaGetErrorString(err));
    }
#endif
    (void)touched_pages;
}

void AdamW::zero_grad() {
    for (at::Tensor& p : params_) {
        if (p.grad().defined()) p.mutable_grad().zero_();
    }
}

StateDict AdamW::state_dict() const {
    StateDict out;
    for (size_t i = 0; i < states_.size(); ++i) {
        const std::string prefix = "state." + std::to_string(i) + ".";
        out[prefix + "step"] = at::tensor({states_[i].step}, at::kLong);
        for (const auto& [key, t] : states_[i].tensors) {
            out[prefix + key] = t.to(at::kCPU, /*non_blocking=*/false, /*copy=*/true);
        }
    }
    return out;
}

void AdamW::load_state_dict(const StateDict& state) {
    // Check everything first, so a bad file leaves the optimizer as it was.
    for (size_t i = 0; i < states_.size(); ++i) {
        const std::string prefix = "state." + std::to_string(i) + ".";
        QLORA_CHECK(state.count(prefix + "step"), name_, ": optimizer state has no '", prefix,
                    "step' (saved for fewer parameters? this run has ", states_.size(), ")");
        const at::Tensor& step = state.at(prefix + "step");
        QLORA_CHECK(step.numel() == 1 && !step.is_floating_point() && step.item<int64_t>() >= 0,
                    name_, ": optimizer state '", prefix, "step' must be one integer >= 0, found ",
                    step.scalar_type(), " ", step.sizes());
        for (const auto& [key, t] : states_[i].tensors) {
            auto it = state.find(prefix + key);
            QLORA_CHECK(it != state.end(), name_, ": optimizer state has no '", prefix, key,
                        "' (saved by a different optimizer kind? ", name_, " keeps ",
                        states_[i].eight_bit ? "8-bit" : "32-bit", " states for parameter ", i,
                        ")");
            // state_dict() saves each state in its own shape, so anything else is a foreign file.
            QLORA_CHECK(
                it->second.scalar_type() == t.scalar_type() && it->second.sizes() == t.sizes(),
                name_, ": optimizer state '", prefix, key, "' is ", it->second.scalar_type(), " ",
                it->second.sizes(), ", expected ", t.scalar_type(), " ", t.sizes(),
                " (was it saved for a different model or rank?)");
        }
    }
    QLORA_CHECK(!state.count("state." + std::to_string(states_.size()) + ".step"), name_,
                ": optimizer state holds more parameters than this run's ", states_.size());
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < states_.size(); ++i) {
        const std::string prefix = "state." + std::to_string(i) + ".";
        states_[i].step = state.at(prefix + "step").to(at::kLong).item<int64_t>();
        for (auto& [key, t] : states_[i].tensors)
            t.copy_(state.at(prefix + key).reshape(t.sizes()));
    }
}

int64_t AdamW::state_bytes() const {
    int64_t total = 0;
    for (const ParamState& st : states_) {
        for (const auto& kv : st.tensors) total += kv.second.nbytes();
    }
    return total;
}

}  // namespace qlora::optim
