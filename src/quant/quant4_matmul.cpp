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
float* tile_buffer(int64_t floats) {
    thread_local at::Tensor buffer;
    if (!buffer.defined() || buffer.numel() < floats) buffer = at::empty({floats}, at::kFloat);
    return buffer.data_ptr<float>();
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

// Splits `extent` into a multiple of the thread count of tiles, each a multiple of 16 wide, whose
// float32 size (times `depth`) stays near tile_bytes. Returns the tile width.
int64_t tile_width(int64_t extent, int64_t depth) {
    const int64_t budget =
        std::max<int64_t>(16, quant4_matmul_tuning().tile_bytes / 4 / std::max<int64_t>(1, depth));
    const int64_t threads = std::max(1, at::get_num_threads());
    int64_t tiles = (extent + budget - 1) / budget;
    tiles = (tiles + threads - 1) / threads * threads;
    const int64_t width = (extent + tiles - 1) / tiles;
    return std::min(extent, (width + 15) / 16 * 16);
}

// x2 [N, K] (row stride ldx, unit column stride) · deq(W)ᵀ -> y [N, O], bias [O] or undefined.
void tiled_xwt(const kernels::Packed4bitMatrix& m, const at::Tensor& x2, const at::Tensor& bias,
               at::Tensor& y) {
    const int64_t out = m.rows, in = m.cols;
    const int64_t width = tile_width(out, in);
    const int64_t tiles = (out + width - 1) / width;
    const kernels::CpuIsa cpu = isa();
    const at::ThreadLocalState caller;  // grad mode & co. for the GEMMs on the worker threads
    at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
        const at::ThreadLocalStateGuard same_state(caller);
        float* buffer = tile_buffer(width * in);
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t r0 = t * width, len = std::min(width, out - r0);
            kernels::quant4_dequant_tile(m, r0, r0 + len, 0, in, buffer, in, cpu);
            const at::Tensor tile = at::from_blob(buffer, {len, in}, at::kFloat);  // [len, K]
            at::Tensor y_tile = y.narrow(1, r0, len);  // [N, len], row stride O
            if (bias.defined()) {
                at::addmm_out(y_tile, bias.narrow(0, r0, len).unsqueeze(0), x2, tile.t());
            } else {
                at::mm_out(y_tile, x2, tile.t());
            }
        }
    });
}

// g2 [N, O] · deq(W) -> dx [N, K]: tiles are column slabs W[:, c0:c1], so each output column is
// written once with the full depth O (no accumulation across tiles).
void tiled_gw(const kernels::Packed4bitMatrix& m, const at::Tensor& g2, at::Tensor& dx) {
    const int64_t out = m.rows, in = m.cols;
    const int64_t width = tile_width(in, out);
    const int64_t tiles = (in + width - 1) / width;
    const kernels::CpuIsa cpu = isa();
    const at::ThreadLocalState caller;
    at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
        const at::ThreadLocalStateGuard same_state(caller);
        float* buffer = tile_buffer(width * out);
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t c0 = t * width, len = std::min(width, in - c0);
            kernels::quant4_dequant_tile(m, 0, out, c0, c0 + len, buffer, len, cpu);
            const at::Tensor tile = at::from_blob(buffer, {out, len}, at::kFloat);  // [O, len]
            at::Tensor dx_tile = dx.narrow(1, c0, len);
            at::mm_out(dx_tile, g2, tile);
        }
    });
}

// [..., features] -> [N, features] with a unit column stride (a view when possible).
at::Tensor rows_of(const at::Tensor& t, int64_t features) {
    at::Tensor t2 = t.reshape({-1, features});
    if (t2.scalar_type() != at::kFloat) t2 = t2.to(at::kFloat);
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
    at::Tensor x2 = rows_of(x, in);
    const int64_t n = x2.size(0);
    at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : at::Tensor();
    at::Tensor y = at::empty({n, out}, x2.options());
    if (n > 0 && int8_matmul(m, x2, y)) {
        if (b.defined()) y.add_(b);
    } else if (n <= quant4_matmul_tuning().gemv_max_rows) {
        kernels::quant4_gemv_xwt(m, x2.data_ptr<float>(), n, x2.stride(0), y.data_ptr<float>(), out,
                                 isa());
        if (b.defined()) y.add_(b);
    } else if (n > 0) {
        tiled_xwt(m, x2, b, y);
    }
    if (x.scalar_type() != at::kFloat) y = y.to(x.scalar_type());
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
    at::Tensor g2 = rows_of(g, out);
    at::Tensor dx = at::empty({g2.size(0), in}, g2.options());
    if (g2.size(0) > 0) tiled_gw(m, g2, dx);
    if (g.scalar_type() != at::kFloat) dx = dx.to(g.scalar_type());
    return dx.view(with_last(g, in));
}

}  // namespace qlora::quant
