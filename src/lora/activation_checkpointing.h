// Activation checkpointing per decoder layer: the forward keeps only each layer's input; the
// backward re-runs the layer with grad enabled and backpropagates through the recomputed graph.
// LibTorch C++ has no torch.utils.checkpoint, so this is a custom autograd function.
//
// Gradients equal the plain model's: the recompute sees the same inputs, the same parameters and
// the same dropout masks (the default generator of the input's device is saved before the forward
// and replayed for the recompute, then put back where backward found it).
#pragma once

#include <torch/torch.h>

#include "model/llama.h"

namespace qlora::lora {

// The layer and its side inputs, none of which needs a gradient: cos/sin [N, T, D], the
// attention mask (may be undefined), and the generator state the forward started from.
struct LayerCall : torch::CustomClassHolder {
    model::DecoderLayer layer{nullptr};
    at::Tensor cos, sin, mask;
    at::Tensor rng_state;  // of the default generator of x's device
    size_t n_params = 0;
    // Keep the saved input in host memory (pinned) while the rest of the forward and the later
    // layers' backward run; copied back to x's device for the recompute. A CPU input is kept as
    // it is (it already is in host memory).
    bool offload = false;
    at::Tensor x_host;                 // the offloaded input (undefined when not offloaded)
    c10::Device x_device = c10::kCPU;  // where it goes back for the recompute
};

class CheckpointedLayerFunction : public torch::autograd::Function<CheckpointedLayerFunction> {
  public:
    // x [B, T, hidden]: the layer input (the one tensor saved). params: the layer's trainable
    // parameters, passed as inputs so their gradients flow out of this node (even when x needs
    // none, as for the first layer).
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                              at::TensorList params, const c10::intrusive_ptr<LayerCall>& call);
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs);
};

// Runs layer(x) checkpointed when grad mode is on and something in it needs a gradient; a plain
// call otherwise (inference, no_grad evaluation). offload: see LayerCall.
at::Tensor checkpointed_layer(model::DecoderLayer& layer, const at::Tensor& x,
                              const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                              bool offload = false);

// Switches checkpointing of the decoder layers on (the training default) or off: on checkpoints
// every layer but the last (unless that one borrows its weights, see the .cpp), whose backward
// directly follows the loss and would only recompute what its forward just made. With
// offload_inputs the checkpointed layer inputs wait in host memory (train.offload_activations).
void set_gradient_checkpointing(model::LlamaImpl& model, bool enabled, bool offload_inputs = false);
bool gradient_checkpointing(const model::LlamaImpl& model);

}  // namespace qlora::lora
