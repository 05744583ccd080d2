// AdamW over a list of fp32 parameters, with states in one of four layouts: fp32 (adamw_32bit),
// fp32 in CUDA managed memory (paged_adamw_32bit), 8-bit blockwise (adamw_8bit) or 8-bit blockwise
// in managed memory (paged_adamw_8bit). The update rule and its derivation are in adamw_ref.h.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "optim/optimizer.h"
#include "optim/paged_buffer.h"

namespace qlora::optim {

struct AdamwLayout {
    bool eight_bit = false;  // blockwise 8-bit m and v for tensors of >= min_8bit_numel elements
    bool paged = false;  // managed memory for tensors of >= paged_min_numel elements (CUDA only)
};

class AdamW final : public Optimizer {
  public:
    // params: fp32 tensors (leaves with requires_grad), on one or several devices; states are made
    // now, zero-filled, on each parameter's device. On a CPU parameter a paged layout falls back to
    // host tensors with one warning.
    AdamW(std::vector<at::Tensor> params, OptimOptions options, AdamwLayout layout = {},
          std::string name = "adamw_32bit");

    void step(double lr) override;
    void zero_grad() override;
    StateDict state_dict() const override;
    void load_state_dict(const StateDict& state) override;
    int64_t state_bytes() const override;
    const std::string& name() const override { return name_; }

    // Introspection for tests: whether parameter i has 8-bit states / paged states, and its steps.
    bool is_8bit(size_t i) const { return states_.at(i).eight_bit; }
    bool is_paged(size_t i) const { return !states_.at(i).pages.empty(); }
    int64_t step_count(size_t i) const { return states_.at(i).step; }

  private:
    struct ParamState {
        int64_t step = 0;
        bool eight_bit = false;
        // fp32 layout: m, v [numel]. 8-bit layout: m_codes, v_codes [numel] uint8 and m_absmax,
        // v_absmax [ceil(numel/256)] fp32. Names as in state_dict() ("m", "v_codes", ...).
        std::vector<std::pair<std::string, at::Tensor>> tensors;
        std::vector<PagedBuffer> pages;  // owners of the managed memory behind paged views
        at::Tensor& get(const std::string& key);
    };

    ParamState make_state(const at::Tensor& param);
    at::Tensor make_tensor(ParamState& st, int64_t numel, at::ScalarType dtype,
                           const c10::Device& device, bool page);

    std::vector<at::Tensor> params_;
    OptimOptions options_;
    AdamwLayout layout_;
    std::string name_;
    std::vector<ParamState> states_;
};

}  // namespace qlora::optim
