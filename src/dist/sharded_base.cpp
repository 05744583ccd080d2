// shard_base: slicing 4-bit tensors by blocks, rebuilding them from every rank's slice, and the
// per-layer gather around each forward.
#include "dist/sharded_base.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/error.h"
#include "model/llama.h"

namespace qlora::dist {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t group_of(bool double_quant) { return double_quant ? bnb::kNestedBlocksize : 1; }

// Byte ranges [begin, end) of one rank's parts within the whole tensor's parts.
struct PartRanges {
    int64_t packed_begin = 0, packed_end = 0;
    int64_t block_begin = 0, block_end = 0;
    int64_t nested_begin = 0, nested_end = 0;
};

PartRanges part_ranges(const Quant4Layout& layout, int rank, int world) {
    const int64_t n_blocks = bnb::num_blocks(layout.numel, layout.blocksize);
    const BlockRange b = rank_blocks(n_blocks, layout.double_quant, rank, world);
    const int64_t packed_total = bnb::packed_bytes(layout.numel);
    // Block k's codes are bytes [k·bs/2, (k+1)·bs/2) (bs is even); the last block may be short.
    PartRanges p;
    p.packed_begin = std::min(b.begin * layout.blocksize / 2, packed_total);
    p.packed_end = std::min(b.end * layout.blocksize / 2, packed_total);
    p.block_begin = b.begin;
    p.block_end = b.end;
    if (layout.double_quant) {
        p.nested_begin = b.begin / bnb::kNestedBlocksize;  // begin is a multiple of 256
        p.nested_end = ceil_div(b.end, bnb::kNestedBlocksize);
    }
    return p;
}

int64_t absmax_element_bytes(const Quant4Layout& layout) { return layout.double_quant ? 1 : 4; }

at::Tensor as_bytes(const at::Tensor& t) { return t.contiguous().view(at::kByte).reshape(-1); }

}  // namespace

BlockRange rank_blocks(int64_t n_blocks, bool double_quant, int rank, int world) {
    const int64_t group = group_of(double_quant);
    const int64_t groups = ceil_div(n_blocks, group);
    const int64_t g0 = groups * rank / world, g1 = groups * (rank + 1) / world;
    return {std::min(g0 * group, n_blocks), std::min(g1 * group, n_blocks)};
}

Quant4Layout layout_of(const quant::Quant4Tensor& w) {
    Quant4Layout l;
    l.shape = w.shape();
    l.dtype = w.dtype();
    l.type = w.type();
    l.blocksize = w.blocksize();
    l.numel = w.numel();
    l.double_quant = w.double_quant();
    if (l.double_quant) {
        l.nested_code = w.nested_code();
        l.nested_offset = w.nested_offset();
    }
    return l;
}

SliceBytes slice_bytes(const Quant4Layout& layout, int rank, int world) {
    const PartRanges p = part_ranges(layout, rank, world);
    SliceBytes s;
    s.packed = p.packed_end - p.packed_begin;
    s.absmax = (p.block_end - p.block_begin) * absmax_element_bytes(layout);
    s.nested = (p.nested_end - p.nested_begin) * 4;
    return s;
}

at::Tensor slice_of(const quant::Quant4Tensor& w, int rank, int world) {
    const PartRanges p = part_ranges(layout_of(w), rank, world);
    std::vector<at::Tensor> parts{
        w.packed().narrow(0, p.packed_begin, p.packed_end - p.packed_begin),
        as_bytes(w.absmax().narrow(0, p.block_begin, p.block_end - p.block_begin))};
    if (w.double_quant()) {
        parts.push_back(
            as_bytes(w.nested_absmax().narrow(0, p.nested_begin, p.nested_end - p.nested_begin)));
    }
    return at::cat(parts);  // a copy: the slice outlives w
}

quant::Quant4Tensor assemble(const Quant4Layout& layout, const std::vector<at::Tensor>& slices,
                             const std::string& name) {
    const int world = static_cast<int>(slices.size());
    std::vector<at::Tensor> packed, absmax, nested;
    for (int r = 0; r < world; ++r) {
        const SliceBytes s = slice_bytes(layout, r, world);
        const at::Tensor& bytes = slices[static_cast<size_t>(r)];
        QLORA_RUNTIME_CHECK(bytes.numel() >= s.total(), "dist: ", name, ": rank ", r, " sent ",
                            bytes.numel(), " bytes of its slice, expected ", s.total());
        packed.push_back(bytes.narrow(0, 0, s.packed));
        absmax.push_back(bytes.narrow(0, s.packed, s.absmax));
        nested.push_back(bytes.narrow(0, s.packed + s.absmax, s.nested));
    }
    // cat gives fresh, aligned storage, so the byte runs can be reinterpreted as float32.
    at::Tensor scales = at::cat(absmax);
    if (!layout.double_quant) scales = scales.view(at::kFloat);
    const at::Tensor nested_absmax =
        layout.double_quant ? at::cat(nested).view(at::kFloat) : at::Tensor();
    return quant::Quant4Tensor::from_parts(at::cat(packed), scales, nested_absmax,
                                           layout.nested_code, layout.nested_offset, layout.shape,
                                           layout.dtype, layout.type, layout.blocksize, name);
}

ShardedLayer::ShardedLayer(Collectives& comm, model::DecoderLayerImpl& layer) : comm_(comm) {
    const int world = comm.world_size();
    offsets_.assign(static_cast<size_t>(world), {});
    std::vector<int64_t> row_len(static_cast<size_t>(world), 0);
    std::vector<at::Tensor> parts;
    for (model::Linear& l : layer.linears()) {
        QLORA_CHECK(l->quantized(), "hardware.parallel: shard_base splits the 4-bit base, but ",
                    l->name(), ".weight is not quantized; set quant.enabled: true");
        const quant::Quant4Tensor& w = l->quant4_weight();
        layouts_.push_back(layout_of(w));
        if (layouts_.back().double_quant)
            layouts_.back().nested_code = layouts_.back().nested_code.to(comm.device());
        for (int r = 0; r < world; ++r) {
            offsets_[static_cast<size_t>(r)].push_back(row_len[static_cast<size_t>(r)]);
            row_len[static_cast<size_t>(r)] += slice_bytes(layouts_.back(), r, world).total();
        }
        parts.push_back(slice_of(w, comm.rank(), world).to(comm.device()));
        l->drop_base();
    }
    const int64_t row = *std::max_element(row_len.begin(), row_len.end());
    mine_ = at::zeros({row}, at::TensorOptions().dtype(at::kByte).device(comm.device()));
    const at::Tensor packed_mine = at::cat(parts);
    mine_.narrow(0, 0, packed_mine.numel()).copy_(packed_mine);
}

void ShardedLayer::acquire(model::DecoderLayerImpl& layer) {
    const at::Tensor rows = comm_.all_gather(mine_);  // [world, row bytes]
    std::vector<model::Linear> linears = layer.linears();
    const int world = comm_.world_size();
    for (size_t i = 0; i < linears.size(); ++i) {
        std::vector<at::Tensor> from;
        for (int r = 0; r < world; ++r) {
            const int64_t start = offsets_[static_cast<size_t>(r)][i];
            from.push_back(rows[r].narrow(0, start, rows.size(1) - start));
        }
        linears[i]->set_quantized(assemble(layouts_[i], from, linears[i]->name() + ".weight"));
    }
}

int64_t ShardedLayer::held_nbytes() const {
    int64_t n = static_cast<int64_t>(mine_.nbytes());
    for (const Quant4Layout& l : layouts_) {
        // as Quant4Tensor::nbytes counts them: the code table and the offset
        if (l.double_quant) n += static_cast<int64_t>(l.nested_code.nbytes() + sizeof(float));
    }
    return n;
}

void ShardedLayer::release(model::DecoderLayerImpl& layer) {
    for (model::Linear& l : layer.linears()) l->drop_base();
}

int64_t shard_base(Collectives& comm, model::LlamaImpl& model) {
    int64_t held = 0;
    for (model::DecoderLayer& layer : model.layers) {
        auto sharded = std::make_shared<ShardedLayer>(comm, *layer);
        held += sharded->held_nbytes();
        layer->weights_source = std::move(sharded);
    }
    return held;
}

}  // namespace qlora::dist
