// CheckpointedLayerFunction: save the input and RNG state, recompute in backward.
#include "lora/activation_checkpointing.h"

#include <ATen/core/Generator.h>

#include <mutex>

namespace qlora::lora {

namespace {

at::Generator default_generator(const c10::Device& device) {
    return at::globalContext().defaultGenerator(device);
}

at::Tensor get_rng_state(const c10::Device& device) {
    at::Generator gen = default_generator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get_state();
}

void set_rng_state(const c10::Device& device, const at::Tensor& state) {
    at::Generator gen = default_generator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
}

at::Tensor run_layer(model::DecoderLayer& layer, const at::Tensor& x, const at::Tensor& cos,
                     const at::Tensor& sin, const at::Tensor& mask) {
    return layer->forward(x, cos, sin, /*start_pos=*/0, nullptr, nullptr, mask);
}

}  // namespace

at::Tensor CheckpointedLayerFunction::forward(torch::autograd::AutogradContext* ctx,
                                              const at::Tensor& x, at::TensorList params,
                                              const c10::intrusive_ptr<LayerCall>& call) {
    call->rng_state = get_rng_state(x.device());
    call->n_params = params.size();
    at::Tensor y =
        run_layer(call->layer, x, call->cos, call->sin, call->mask);  // grad mode is off here
    if (call->offload && !x.device().is_cpu()) {
        // Pinned, so the copy is asynchronous on the current stream; the layer's output does not
        // depend on it, and the recompute's copy back is ordered after it on the same stream.
        call->x_host = at::empty(x.sizes(), x.options().device(c10::kCPU).pinned_memory(true));
        call->x_host.copy_(x.detach(), /*non_blocking=*/true);
        call->x_device = x.device();
        ctx->save_for_backward({});
    } else {
        ctx->save_for_backward({x});
    }
    ctx->saved_data["call"] = c10::IValue::make_capsule(call);
    return y;
}

torch::autograd::variable_list CheckpointedLayerFunction::backward(
    torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad_outputs) {
    auto holder = ctx->saved_data["call"].toCapsule();
    auto& call = *static_cast<LayerCall*>(holder.get());
    // The layer input the forward kept: as saved, or back from host memory.
    const at::Tensor x = call.x_host.defined()
                             ? call.x_host.to(call.x_device, /*non_blocking=*/true)
                             : ctx->get_saved_variables()[0];

    const bool x_grad = ctx->needs_input_grad(0);
    at::Tensor xr = x.detach().requires_grad_(x_grad);
    std::vector<at::Tensor> params;
    for (const auto& p : call.layer->parameters()) {
        if (p.requires_grad()) params.push_back(p);
    }
    TORCH_CHECK(params.size() == call.n_params,
                "checkpointed layer: its trainable parameters changed "
                "between forward (",
                call.n_params, ") and backward (", params.size(), ")");

    at::Tensor y;
    const c10::Device device = x.device();
    const at::Tensor rng_now = get_rng_state(device);
    set_rng_state(device, call.rng_state);
    {
        torch::AutoGradMode grad_on(true);
        y = run_layer(call.layer, xr, call.cos, call.sin, call.mask);
    }
    set_rng_state(device, rng_now);

    std::vector<at::Tensor> inputs;
    if (x_grad) inputs.push_back(xr);
    inputs.insert(inputs.end(), params.begin(), params.end());
    torch::autograd::variable_list grads;
    if (!inputs.empty() && y.requires_grad()) {
        grads = torch::autograd::grad({y}, inputs, {grad_outputs[0]}, /*retain_graph=*/false,
                                      /*create_graph=*/false, /*allow_unused=*/true);
    } else {
        grads.resize(inputs.size());
    }
    // one entry per forward argument: x, each param, call
    torch::autograd::variable_list out;
    size_t k = 0;
    out.push_back(x_grad ? grads[k++] : at::Tensor());
    for (size_t i = 0; i < params.size(); ++i) out.push_back(grads[k++]);
    out.emplace_back();
    return out;
}

at::Tensor checkpointed_layer(model::DecoderLayer& layer, const at::Tensor& x,
                              const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                              bool offload) {
    std::vector<at::Tensor> params;
    if (torch::GradMode::is_enabled()) {
        for (const auto& p : layer->parameters()) {
            if (p.requires_grad()) params.push_back(p);
        }
    }
    if (params.empty() && !(torch::GradMode::is_enabled() && x.requires_grad())) {
        return run_layer(layer, x, cos, sin, mask);
    }
    auto call = c10::make_intrusive<LayerCall>();
    call->layer = layer;
    call->cos = cos;
    call->sin = sin;
    call->mask = mask;
    call->offload = offload;
    return CheckpointedLayerFunction::apply(x, at::TensorList(params), call);
}

void set_gradient_checkpointing(model::LlamaImpl& model, bool enabled, bool offload_inputs) {
    if (!enabled) {
        model.layer_runner = nullptr;
        return;
    }
    // The last layer runs plainly: its backward comes right after the loss, so a recompute would
    // rebuild the very activations the forward just made. Keeping them costs no more than the
    // recompute does, as it holds one layer's activations at the same point: the memory plan
    // already counts them together with the logits. A layer that borrows its weights (a sharded
    // base) stays checkpointed, so that its gathered weights are dropped after the forward.
    const model::DecoderLayerImpl* last =
        model.layers.empty() ? nullptr : model.layers.back().get();
    model.layer_runner = [offload_inputs, last](model::DecoderLayer& layer, const at::Tensor& h,
                                                const at::Tensor& cos, const at::Tensor& sin,
                                                const at::Tensor& mask) {
        if (layer.get() == last && layer->weights_source == nullptr) {
            return run_layer(layer, h, cos, sin, mask);
        }
        return checkpointed_layer(layer, h, cos, sin, mask, offload_inputs);
    };
}

bool gradient_checkpointing(const model::LlamaImpl& model) {
    return static_cast<bool>(model.layer_runner);
}

}  // namespace qlora::lora
