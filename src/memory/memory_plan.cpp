// plan_memory: weights from the shapes, LoRA from the targets, optimizer states from the
// optimizer's own accounting, activations from what our modules save for backward.
#include "memory/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "model/llama_layout.h"

namespace qlora::memory {

namespace {

struct Projection {
    std::string key;
    int64_t in, out;
};

// The projections of one decoder layer, in model order (the layout table's per-layer linears).
std::vector<Projection> layer_projections(const model::LlamaConfig& c) {
    std::vector<Projection> out;
    for (const model::TensorRole& r : model::llama_roles()) {
        if (r.kind != model::TensorKind::kLinear || !r.per_layer) continue;
        const std::vector<int64_t> shape = model::role_shape(r, c);  // [out, in]
        out.push_back({std::string(r.lora_target), shape[1], shape[0]});
    }
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// Bytes one decoder layer saves for backward at N = B·T tokens, e = compute dtype size, following
// our modules: RMSNorm keeps fp32 h and its cast (x2 norms); q/k/v outputs and their roped copies;
// the attention output and fp32 logsumexp (flash/efficient SDPA, no T×T matrix); gate, up,
// silu(gate) and their product; two residual sums; plus `mask_bytes` (dropout masks, QAT inputs).
int64_t layer_activation_bytes(const model::LlamaConfig& c, int64_t n, int64_t e,
                               int64_t mask_bytes) {
    const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), i = c.intermediate_size;
    int64_t per_token = 2 * h * (4 + e)     // two RMSNorms: fp32 normalised h and the cast
                        + e * (q + 2 * kv)  // q, k, v projections
                        + e * (q + kv)      // roped q, k
                        + e * q + 4 * c.num_attention_heads  // attention output, logsumexp
                        + 4 * e * i                          // gate, up, silu(gate), silu(gate)·up
                        + 2 * e * h;                         // the two residual sums
    return n * per_token + mask_bytes;
}

// Per-layer sizes the multi-GPU plans split or gather.
struct LayerBytes {
    int64_t base = 0;  // one layer's projection bytes, whole (NF4, or dense without quant)
    // The longest rank's slice (dist::rank_blocks: whole groups of 256 blocks under double
    // quant, single blocks otherwise), which every rank's gather buffer is padded to.
    int64_t base_slice = 0;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A dense base (only --dry-run's "16-bit base instead" comparison: training refuses it) is
// planned as an even split of its elements.
LayerBytes layer_bytes(const PlanInputs& in) {
    LayerBytes b;
    const int64_t group = in.quant.double_quant ? bnb::kNestedBlocksize : 1;
    const int64_t e = static_cast<int64_t>(c10::elementSize(in.weight_dtype));
    for (const Projection& pr : layer_projections(in.model)) {
        const int64_t w = pr.in * pr.out;
        if (!in.quantize) {
            b.base += w * e;
            b.base_slice += ceil_div(w, in.world_size) * e;
            continue;
        }
        b.base += quant4_nbytes(w, in.quant);
        const int64_t blocks = bnb::num_blocks(w, in.quant.blocksize);
        const int64_t slice_blocks =
            std::min(blocks, ceil_div(ceil_div(blocks, group), in.world_size) * group);
        b.base_slice += quant4_nbytes(slice_blocks * in.quant.blocksize, in.quant);
    }
    return b;
}

// The single-GPU plan `p` turned into one rank's (see ParallelMode).
void apply_parallel(const PlanInputs& in, MemoryPlan& p) {
    p.world_size = in.world_size;
    p.parallel = in.parallel;
    if (in.world_size == 1) return;
    // Both modes: float32 LoRA gradients become views of the flat bucket (dist::GradBucket), no
    // extra bytes; another LoRA dtype needs a float32 copy.
    if (in.lora.dtype != c10::kFloat) p.comm_buffers = p.lora_numel * 4;
    if (in.parallel == ParallelMode::kData) return;
    const LayerBytes layer = layer_bytes(in);
    (in.quantize ? p.quantized_weights : p.dense_weights) -=
        (layer.base - layer.base_slice) * in.model.num_hidden_layers;
    // The layer in use: the gathered rows (world x the padded slice) and the projections rebuilt
    // from them, which autograd keeps until the layer's backward.
    p.gathered_weights = in.world_size * layer.base_slice + layer.base;
}

}  // namespace

const char* parallel_mode_name(ParallelMode mode) {
    return mode == ParallelMode::kData ? "data" : "shard_base";
}

int64_t quant4_nbytes(int64_t numel, const quant::Quant4Options& o) {
    const int64_t blocks = bnb::num_blocks(numel, o.blocksize);
    int64_t bytes = bnb::packed_bytes(numel);
    if (!o.double_quant) return bytes + 4 * blocks;               // fp32 absmax
    bytes += blocks;                                              // uint8 absmax codes
    bytes += 4 * bnb::num_blocks(blocks, bnb::kNestedBlocksize);  // fp32 nested absmax
    bytes += 4 * 256 + 4;                                         // nested code map, offset
    return bytes;
}

MemoryPlan plan_memory(const PlanInputs& in) {
    lora::validate(in.lora);
    QLORA_CHECK(in.world_size >= 1 && in.world_size <= (1 << 20),
                "memory plan: world_size must be in [1, ", 1 << 20, "], found ", in.world_size);
    QLORA_CHECK(in.micro_batch > 0 && in.seq_len > 0,
                "memory plan: micro_batch and seq_len must be > 0, found ", in.micro_batch, " and ",
                in.seq_len);
    const model::LlamaConfig& c = in.model;
    const int64_t e = static_cast<int64_t>(c10::elementSize(in.weight_dtype));
    const int64_t lora_e = static_cast<int64_t>(c10::elementSize(in.lora.dtype));
    const std::vector<std::string> targets = lora::resolve_targets(in.lora.targets);
    const int64_t n_tok = in.micro_batch * in.seq_len;

    MemoryPlan p;
    std::vector<int64_t> lora_numels;
    // per layer: one bool per adapter input element when dropout is on; with int8 activation QAT,
    // each projection's fake-quantized input and its STE mask
    int64_t mask_bytes = 0;
    int64_t max_weight = 0, max_in_out = 0;
    for (const Projection& pr : layer_projections(c)) {
        const int64_t w = pr.in * pr.out;
        max_weight = std::max(max_weight, w);
        max_in_out = std::max(max_in_out, pr.in + pr.out);
        if (in.qat && in.qat_activations_int8) mask_bytes += n_tok * pr.in * (e + 1);
        const int64_t per_layer = in.quantize ? quant4_nbytes(w, in.quant) : w * e;
        (in.quantize ? p.quantized_weights : p.dense_weights) += per_layer * c.num_hidden_layers;
        if (contains(targets, pr.key)) {
            for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
                lora_numels.push_back(in.lora.r * pr.in);
                lora_numels.push_back(pr.out * in.lora.r);
            }
            if (in.lora.dropout > 0.0) mask_bytes += n_tok * pr.in;
        }
    }
    // Biases stay dense.
    const int64_t bias = (c.qkv_bias ? c.q_dim() + 2 * c.kv_dim() : 0) +
                         (c.o_bias ? c.hidden_size : 0) +
                         (c.mlp_bias ? 2 * c.intermediate_size + c.hidden_size : 0);
    p.dense_weights += bias * e * c.num_hidden_layers;
    // Embeddings, lm_head (once when tied), 2 norms per layer and the final norm.
    p.dense_weights += c.vocab_size * c.hidden_size * e * (c.tie_word_embeddings ? 1 : 2);
    p.dense_weights += (2 * c.num_hidden_layers + 1) * c.hidden_size * e;
    if (contains(targets, "lm_head")) {
        lora_numels.push_back(in.lora.r * c.hidden_size);
        lora_numels.push_back(c.vocab_size * in.lora.r);
    }
    for (int64_t n : lora_numels) p.lora_numel += n;
    p.lora_params = p.lora_numel * lora_e;
    p.lora_grads = p.lora_numel * lora_e;
    const optim::StateBytes states =
        optim::optimizer_state_bytes(in.optimizer, lora_numels, in.optim_options);
    p.optimizer_resident = states.resident;
    p.optimizer_paged = states.paged;

    const int64_t layer = layer_activation_bytes(c, n_tok, e, mask_bytes);
    if (in.checkpointing) {
        // Each layer's input is kept; backward recomputes one layer at a time. The last layer is
        // not recomputed: its activations (`layer`) are held through the loss, and the sum below
        // already counts them beside the logits.
        p.activations = c.num_hidden_layers * n_tok * c.hidden_size * e + layer;
    } else {
        p.activations = c.num_hidden_layers * layer;
    }
    // Final norm (as a layer norm above) and the logits: compute dtype, the fp32 copy the loss
    // reads, its log-softmax and the gradient of the logits at the start of backward.
    p.activations += n_tok * c.hidden_size * (4 + e);
    p.workspace = n_tok * c.vocab_size * (e + 4 + 4 + 4);
    // One dequantized weight exists at a time (forward or backward of a 4-bit projection).
    if (in.quantize) p.workspace += max_weight * e;
    if (in.qat) {
        p.qat_transient = max_weight * (3 * 4 + e);
        if (in.qat_merge_aware) p.qat_transient += max_weight * (1 + 4) + n_tok * max_in_out * 4;
    }
    if (in.offload_activations && in.checkpointing && c.num_hidden_layers > 2) {
        p.host_activations = (c.num_hidden_layers - 2) * n_tok * c.hidden_size * e;
        p.activations -= p.host_activations;
    }
    apply_parallel(in, p);
    return p;
}

std::string MemoryPlan::describe() const {
    auto row = [](const char* name, int64_t bytes) {
        char buf[128];
        std::snprintf(buf, sizeof(buf), "  %-22s %10.3f GiB  %16lld B\n", name,
                      static_cast<double>(bytes) / (1ull << 30), static_cast<long long>(bytes));
        return std::string(buf);
    };
    std::string s;
    s += row("4-bit base weights", quantized_weights);
    s += row("16-bit/dense weights", dense_weights);
    s += row("LoRA parameters", lora_params);
    s += row("LoRA gradients", lora_grads);
    s += row("optimizer (resident)", optimizer_resident);
    s += row("optimizer (paged)", optimizer_paged);
    s += row("activations", activations);
    s += row("workspace", workspace);
    if (qat_transient > 0) s += row("QAT transient", qat_transient);
    if (world_size > 1) {
        if (parallel == ParallelMode::kShardBase) s += row("gathered layer", gathered_weights);
        s += row("collective buffers", comm_buffers);
    }
    s += row("total", total());
    if (host_activations > 0) s += row("host: offloaded ckpts", host_activations);
    s += row("total without paged", total_without_paged());
    return s;
}

}  // namespace qlora::memory
