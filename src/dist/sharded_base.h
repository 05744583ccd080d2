// shard_base: the frozen 4-bit base split FSDP-style across the ranks (hardware.parallel:
// shard_base). Each rank keeps, for every projection of every decoder layer, a contiguous run of
// whole quantization blocks: its packed NF4/FP4 bytes, their absmax and, under double quant, the
// nested absmax of those blocks (runs are cut at multiples of 256 blocks there, so each nested
// value belongs to one rank). A layer's seven slices are one byte buffer per rank; the layer's
// forward all-gathers the buffers (one collective per layer), rebuilds each projection bit for
// bit as the unsharded Quant4Tensor and drops it after the forward (model/layer_weights.h). With
// activation checkpointing the recompute in backward gathers again, so at most one layer's full
// base is alive besides the slices. The rest of the model (embeddings, norms, lm_head, LoRA and
// its optimizer states) stays replicated and trains as in data parallelism.
//
// Why FSDP-style rather than a layer pipeline: every rank keeps training its own micro-batches
// (the data-parallel step, losses and resume rules unchanged), the per-rank memory is the same
// 1/world on every rank whatever the layer count, and a layer's gather is 1/world of the bytes a
// 16-bit FSDP moves. A pipeline would idle ranks in its bubble and need the window's
// micro-batches scheduled across ranks.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

#include "dist/collectives.h"
#include "model/layer_weights.h"
#include "quant/quant4_tensor.h"

namespace qlora::model {
class LlamaImpl;
}

namespace qlora::dist {

// Blocks [begin, end) of one rank.
struct BlockRange {
    int64_t begin = 0;
    int64_t end = 0;
};

// Rank `rank`'s run of the n_blocks blocks: the blocks cut into whole groups (256 blocks under
// double quant, 1 otherwise) and the groups dealt as evenly as they go (a rank may get none).
BlockRange rank_blocks(int64_t n_blocks, bool double_quant, int rank, int world);

// Everything about a 4-bit tensor but its blocks: what every rank needs to rebuild it.
struct Quant4Layout {
    std::vector<int64_t> shape;
    c10::ScalarType dtype = at::kFloat;
    quant::QuantType type = quant::QuantType::kNF4;
    int64_t blocksize = 0;
    int64_t numel = 0;
    bool double_quant = false;
    at::Tensor nested_code;  // float32 [256] under double quant
    float nested_offset = 0.0f;
};
Quant4Layout layout_of(const quant::Quant4Tensor& w);

// Byte counts of one rank's slice: packed codes, absmax (uint8 or float32), nested absmax.
struct SliceBytes {
    int64_t packed = 0;
    int64_t absmax = 0;
    int64_t nested = 0;
    int64_t total() const { return packed + absmax + nested; }
};
SliceBytes slice_bytes(const Quant4Layout& layout, int rank, int world);

// Rank `rank`'s slice of w as one uint8 tensor [slice_bytes(...).total()]: packed | absmax |
// nested absmax, a copy on w's device.
at::Tensor slice_of(const quant::Quant4Tensor& w, int rank, int world);

// The tensor again from every rank's slice (slices[r] starts with rank r's bytes; anything after
// them is ignored): the same bytes as the tensor that was sliced. `name` labels errors.
quant::Quant4Tensor assemble(const Quant4Layout& layout, const std::vector<at::Tensor>& slices,
                             const std::string& name);

// One decoder layer's base, sharded: this rank's slices of its seven projections in one buffer,
// gathered into the layer's linears for each forward.
class ShardedLayer : public model::LayerWeights {
  public:
    // Takes the layer's 4-bit base weights (each must be quantized), keeps this rank's slices on
    // comm.device() and drops the full weights from the layer.
    ShardedLayer(Collectives& comm, model::DecoderLayerImpl& layer);

    void acquire(model::DecoderLayerImpl& layer) override;
    void release(model::DecoderLayerImpl& layer) override;
    // The slices' buffer and the replicated nested code tables and offsets.
    int64_t held_nbytes() const override;

  private:
    Collectives& comm_;
    std::vector<Quant4Layout> layouts_;  // per projection
    // offsets_[r][i]: where projection i's slice starts in rank r's buffer.
    std::vector<std::vector<int64_t>> offsets_;
    at::Tensor mine_;  // uint8 [row_bytes]: this rank's slices, padded to the longest rank's
};

// Shards every decoder layer of `model` (its linears must be 4-bit) across comm's ranks. Returns
// the bytes of 4-bit base this rank now holds.
int64_t shard_base(Collectives& comm, model::LlamaImpl& model);

}  // namespace qlora::dist
