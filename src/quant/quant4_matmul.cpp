// Tensor-level 4-bit matmuls on the CPU: shape checks, the GEMV / tiled-GEMM choice, and the tiled
// loops. Tiles of W are dequantized into a thread-local buffer (kept between calls, so no page
// faults on a fresh allocation) and multiplied with ATen's GEMM on views; at::parallel_for gives
// each thread whole tiles, and a GEMM inside a parallel region runs on its own thread. Those GEMMs
// are dispatcher calls on OpenMP worker threads, whose thread-local state (grad mode: off inside an
// autograd Function's forward, on by default elsewhere) is the caller's through
// at::ThreadLocalStateGuard; without it an out= GEMM on a tensor that requires grad is refused.
#include "quant/quant4_matmul.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <vector>

#include "quant/quant4_ops.h"

namespace qlora::quant {
namespace {

// The raw view of w's parts (all CPU tensors; the float32 ones are float32 already by
// construction).
kernels::Packed4bitMatrix matrix_of(const Quant4Tensor& w, int64_t rows, int64_t cols) {
    kernels::Packed4bitMatrix m;
    m.packed = w.packed().data_ptr<uint8_t>();
    if (w.double_quant()) {
        m.absmax_codes = w.absmax().data_ptr<uint8_t>();
        m.nested = w.nested_absmax().data_ptr<float>();
        m.map = w.nested_code().data_ptr<float>();
        m.offset = w.nested_offset();
    } else {
        m.absmax = w.absmax().data_ptr<float>();
    }
    m.code_values = codebook(w.type()).values;
    m.rows = rows;
    m.cols = cols;
    m.blocksize = w.blocksize();
    return m;
}

// The parts must be contiguous for raw indexing; Quant4Tensor keeps them so, but a view from
// from_parts may not be: check rather than copy per call.
void check_parts(const Quant4Tensor& w) {
    TORCH_CHECK(w.packed().is_contiguous() && w.absmax().is_contiguous() &&
                    (!w.double_quant() ||
                     (w.nested_absmax().is_contiguous() && w.nested_code().is_contiguous())),
                "quant4_linear: the 4-bit weight's parts must be contiguous");
    TORCH_CHECK(w.double_quant() || w.absmax().scalar_type() == at::kFloat,
                "quant4_linear: absmax must be float32 without double quantization, got ",
                w.absmax().scalar_type());
}

kernels::CpuIsa isa() { return std::min(quant4_matmul_tuning().max_isa, kernels::best_cpu_isa()); }

// One per thread, grown on demand and kept: later matmuls reuse its (already faulted-in) pages.
// A c10 allocation, so allocation-counting tests see its first growth like any tensor.
void* tile_buffer(int64_t bytes) {
    thread_local at::Tensor buffer;
    if (!buffer.defined() || buffer.numel() < bytes) buffer = at::empty({bytes}, at::kByte);
    return buffer.data_ptr();
}

// The tile W[r0:r1, c0:c1] in `type` (float32, or bfloat16 for the bf16 GEMMs) at buffer, as an
// [r1 - r0, c1 - c0] tensor over it.
at::Tensor dequant_tile(const kernels::Packed4bitMatrix& m, int64_t r0, int64_t r1, int64_t c0,
                        int64_t c1, void* buffer, at::ScalarType type) {
    const int64_t ld = c1 - c0;
    if (type == at::kBFloat16) {
        kernels::quant4_dequant_tile_bf16(m, r0, r1, c0, c1, static_cast<uint16_t*>(buffer), ld,
                                          isa());
    } else {
        kernels::quant4_dequant_tile(m, r0, r1, c0, c1, static_cast<float*>(buffer), ld, isa());
    }
    return at::from_blob(buffer, {r1 - r0, ld}, type);
}

// The opt-in int8-activation matmul (Quant4MatmulTuning::int8_activations), decode or prefill:
// false when it is off, the CPU or layout does not allow it, or x holds a non-finite value (the
// exact path runs then).
bool int8_matmul(const kernels::Packed4bitMatrix& m, const at::Tensor& x2, at::Tensor& y) {
    if (!quant4_matmul_tuning().int8_activations || !kernels::quant4_int8_gemv_supported(m)) {
        return false;
    }
    const int64_t n = x2.size(0);
    thread_local at::Tensor storage;  // kept between calls, like the tiles
    const int64_t bytes = kernels::Int8Activations::bytes_for(n, m.cols);
    if (!storage.defined() || storage.numel() < bytes) storage = at::empty({bytes}, at::kByte);
    kernels::Int8Activations xq =
        kernels::Int8Activations::layout(storage.data_ptr<uint8_t>(), n, m.cols);
    if (!kernels::quantize_activations_int8(x2.data_ptr<float>(), n, x2.stride(0), xq)) {
        return false;
    }
    kernels::quant4_gemv_xwt_int8(m, xq, y.data_ptr<float>(), m.rows);
    return true;
}

// Splits `extent` into tiles whose float32 size (times `depth`) stays near tile_bytes, each a
// multiple of 64 wide (the bf16 dequantization's vector body takes 64 weights at a time) but the
// last, and as many tiles as a multiple of the thread count: the threads' shares then differ by at
// most the last tile's shortfall. Returns the tile width.
int64_t tile_width(int64_t extent, int64_t depth) {
    constexpr int64_t kAlign = 64;
    const int64_t budget = std::max<int64_t>(
        kAlign, quant4_matmul_tuning().tile_bytes / 4 / std::max<int64_t>(1, depth));
    const int64_t threads = std::max(1, at::get_num_threads());
    auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
    for (int64_t tiles = ceil_div(ceil_div(extent, budget), threads) * threads;; tiles += threads) {
        const int64_t width = std::min(extent, ceil_div(ceil_div(extent, tiles), kAlign) * kAlign);
        if (ceil_div(extent, width) % threads == 0 || width <= kAlign) return width;
    }
}

// x2 [N, K] (row stride ldx, unit column stride) · deq(W)ᵀ -> y [N, O], bias [O] or undefined,
// all in x2's dtype (float32 or bfloat16, the tiles' dtype too).
void tiled_xwt(const kernels::Packed4bitMatrix& m, const at::Tensor& x2, const at::Tensor& bias,
               at::Tensor& y) {
    const int64_t out = m.rows, in = m.cols;
    const int64_t width = tile_width(out, in);
    const int64_t tiles = (out + width - 1) / width;
    const at::ScalarType type = x2.scalar_type();
    const at::ThreadLocalState caller;  // grad mode & co. for the GEMMs on the worker threads
    at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
        const at::ThreadLocalStateGuard same_state(caller);
        void* buffer = tile_buffer(width * in * at::elementSize(type));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t r0 = t * width, len = std::min(width, out - r0);
            const at::Tensor tile = dequant_tile(m, r0, r0 + len, 0, in, buffer, type);  // [len, K]
            at::Tensor y_tile = y.narrow(1, r0, len);  // [N, len], row stride O
            if (bias.defined()) {
                at::addmm_out(y_tile, bias.narrow(0, r0, len).unsqueeze(0), x2, tile.t());
            } else {
                at::mm_out(y_tile, x2, tile.t());
            }
        }
    });
}

// g2 [N, O] · deq(W) -> dx [N, K] in g2's dtype: tiles are column slabs W[:, c0:c1], so each
// output column is written once with the full depth O (no accumulation across tiles).
void tiled_gw(const kernels::Packed4bitMatrix& m, const at::Tensor& g2, at::Tensor& dx) {
    const int64_t out = m.rows, in = m.cols;
    const int64_t width = tile_width(in, out);
    const int64_t tiles = (in + width - 1) / width;
    const at::ScalarType type = g2.scalar_type();
    const at::ThreadLocalState caller;
    at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
        const at::ThreadLocalStateGuard same_state(caller);
        void* buffer = tile_buffer(width * out * at::elementSize(type));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t c0 = t * width, len = std::min(width, in - c0);
            const at::Tensor tile =
                dequant_tile(m, 0, out, c0, c0 + len, buffer, type);  // [O, len]
            at::Tensor dx_tile = dx.narrow(1, c0, len);
            at::mm_out(dx_tile, g2, tile);
        }
    });
}

// The dtype the tiled matmuls compute in for an input of dtype t: bf16 tiles and ATen's bf16 GEMM
// (float32 accumulation: what at::linear(x, w.dequantize(bf16)) computes) when the tuning allows;
// float32 otherwise.
at::ScalarType tiled_dtype(at::ScalarType t) {
    return t == at::kBFloat16 && quant4_matmul_tuning().bf16_tiles ? at::kBFloat16 : at::kFloat;
}

// [..., features] -> [N, features] in `type` with a unit column stride (a view when possible).
at::Tensor rows_of(const at::Tensor& t, int64_t features, at::ScalarType type) {
    at::Tensor t2 = t.reshape({-1, features});
    if (t2.scalar_type() != type) t2 = t2.to(type);
    if (t2.stride(1) != 1 || t2.stride(0) < features) t2 = t2.contiguous();
    return t2;
}

std::vector<int64_t> with_last(const at::Tensor& t, int64_t last) {
    std::vector<int64_t> shape = t.sizes().vec();
    shape.back() = last;
    return shape;
}

void check_weight(const char* op, const Quant4Tensor& w) {
    TORCH_CHECK(w.defined() && w.shape().size() == 2, op,
                ": the 4-bit weight must be 2-D [out, in]");
}

}  // namespace

Quant4MatmulTuning& quant4_matmul_tuning() {
    static Quant4MatmulTuning tuning;
    return tuning;
}

bool quant4_matmul_fused(const at::Tensor& x, const Quant4Tensor& w) {
    const auto t = x.scalar_type();
    return w.defined() && w.device().is_cpu() && x.device().is_cpu() &&
           (t == at::kFloat || t == at::kHalf || t == at::kBFloat16);
}

at::Tensor quant4_linear(const at::Tensor& x, const Quant4Tensor& w, const at::Tensor& bias) {
    check_weight("quant4_linear", w);
    const int64_t out = w.shape()[0], in = w.shape()[1];
    TORCH_CHECK(x.dim() >= 1 && x.size(-1) == in, "quant4_linear: x must be [..., ", in, "], got ",
                x.sizes());
    TORCH_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == out),
                "quant4_linear: bias must be [", out, "], got ", bias.sizes());
    if (!quant4_matmul_fused(x, w)) {
        at::Tensor b = bias.defined() ? bias.to(x.scalar_type()) : at::Tensor();
        return at::linear(x, w.dequantize(x.scalar_type()), b);
    }
    check_parts(w);
    const kernels::Packed4bitMatrix m = matrix_of(w, out, in);
    const auto& tuning = quant4_matmul_tuning();
    const int64_t n = c10::multiply_integers(x.sizes().begin(), x.sizes().end() - 1);
    const bool tiled = n > tuning.gemv_max_rows && !tuning.int8_activations;
    const at::ScalarType type = tiled ? tiled_dtype(x.scalar_type()) : at::kFloat;
    at::Tensor x2 = rows_of(x, in, type);
    at::Tensor b = bias.defined() ? bias.to(type).contiguous() : at::Tensor();
    at::Tensor y = at::empty({n, out}, x2.options());
    if (tiled) {
        tiled_xwt(m, x2, b, y);
    } else if (n > 0 && int8_matmul(m, x2, y)) {
        if (b.defined()) y.add_(b);
    } else if (n <= tuning.gemv_max_rows) {
        kernels::quant4_gemv_xwt(m, x2.data_ptr<float>(), n, x2.stride(0), y.data_ptr<float>(), out,
                                 isa());
        if (b.defined()) y.add_(b);
    } else if (n > 0) {
        tiled_xwt(m, x2, b, y);
    }
    if (y.scalar_type() != x.scalar_type()) y = y.to(x.scalar_type());
    return y.view(with_last(x, out));
}

at::Tensor quant4_matmul_grad_input(const at::Tensor& g, const Quant4Tensor& w) {
    check_weight("quant4_matmul_grad_input", w);
    const int64_t out = w.shape()[0], in = w.shape()[1];
    TORCH_CHECK(g.dim() >= 1 && g.size(-1) == out, "quant4_matmul_grad_input: g must be [..., ",
                out, "], got ", g.sizes());
    if (!quant4_matmul_fused(g, w)) return at::matmul(g, w.dequantize(g.scalar_type()));
    check_parts(w);
    const kernels::Packed4bitMatrix m = matrix_of(w, out, in);
    at::Tensor g2 = rows_of(g, out, tiled_dtype(g.scalar_type()));
    at::Tensor dx = at::empty({g2.size(0), in}, g2.options());
    if (g2.size(0) > 0) tiled_gw(m, g2, dx);
    if (dx.scalar_type() != g.scalar_type()) dx = dx.to(g.scalar_type());
    return dx.view(with_last(g, in));
}

}  // namespace qlora::quant
