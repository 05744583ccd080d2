// Portable bodies, run-time ISA choice and the scalar reference twins of the fused CPU 4-bit
// matmuls (contract and error bound in the header).
#include "kernels/quant4_matmul_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

// CMakeLists.txt compiles quant4_matmul_cpu_avx2.cpp on x86-64 only; elsewhere the AVX2 entry
// points are stubs that best_cpu_isa() never selects.
#if defined(__x86_64__)
#define QLORA_CPU_AVX2_KERNELS 1
#else
#define QLORA_CPU_AVX2_KERNELS 0
#endif

namespace qlora::kernels {
#if !QLORA_CPU_AVX2_KERNELS
namespace detail {
void gemv_rows_avx2(const Packed4bitMatrix&, const float*, int64_t, int64_t, int64_t, float*,
                    int64_t) {
    std::abort();
}
void dequant_segment_avx2(const uint8_t*, int64_t, int64_t, const float*, float*) { std::abort(); }
void gemv_rows_avx512(const Packed4bitMatrix&, const float*, int64_t, int64_t, int64_t, float*,
                      int64_t) {
    std::abort();
}
void dequant_segment_avx512(const uint8_t*, int64_t, int64_t, const float*, float*) {
    std::abort();
}
}  // namespace detail
#endif

namespace {

// The 16 code values times one block's scale: one float32 rounding per value, as in dequantize.
void scaled_table(const Packed4bitMatrix& w, int64_t block, float* table) {
    const float s = block_scale(w, block);
    for (int k = 0; k < 16; ++k) table[k] = w.code_values[k] * s;
}

uint8_t nibble(const uint8_t* packed, int64_t e) {
    const uint8_t byte = packed[e / 2];
    return e % 2 == 0 ? bnb::high_nibble(byte) : bnb::low_nibble(byte);
}

// Flat elements [e0, e1) of one block into out, any start parity.
void dequant_segment_scalar(const uint8_t* packed, int64_t e0, int64_t e1, const float* table,
                            float* out) {
    int64_t e = e0;
    if (e < e1 && e % 2 != 0) *out++ = table[nibble(packed, e++)];
    for (; e + 1 < e1; e += 2) {
        const uint8_t byte = packed[e / 2];
        out[0] = table[bnb::high_nibble(byte)];
        out[1] = table[bnb::low_nibble(byte)];
        out += 2;
    }
    if (e < e1) *out = table[nibble(packed, e)];
}

// deq(W) at flat element e, the reference way: one product per element.
float deq_element(const Packed4bitMatrix& w, int64_t e) {
    return w.code_values[nibble(w.packed, e)] * block_scale(w, e / w.blocksize);
}

// The vector GEMVs read x in groups of G as [x0, x2, ..., x(G-2), x1, x3, ..., x(G-1)]: the order
// in which they unpack high then low nibbles of G/2 bytes. xg: n rows of `cols` floats.
void regroup_x(const float* x, int64_t n, int64_t ldx, int64_t cols, int64_t group, float* xg) {
    const int64_t half = group / 2;
    for (int64_t i = 0; i < n; ++i) {
        const float* src = x + i * ldx;
        float* dst = xg + i * cols;
        for (int64_t g = 0; g < cols; g += group) {
            for (int64_t j = 0; j < half; ++j) {
                dst[g + j] = src[g + 2 * j];
                dst[g + half + j] = src[g + 2 * j + 1];
            }
        }
    }
}

int64_t group_width(CpuIsa isa) { return isa == CpuIsa::kAvx512 ? 32 : 16; }

// Portable GEMV: each row of W dequantized into a row buffer (cols floats, per chunk of rows),
// then one dot product per x row.
void gemv_rows_portable(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx,
                        int64_t o0, int64_t o1, float* y, int64_t ldy) {
    std::vector<float> row(static_cast<size_t>(w.cols));
    for (int64_t o = o0; o < o1; ++o) {
        quant4_dequant_tile(w, o, o + 1, 0, w.cols, row.data(), w.cols, CpuIsa::kPortable);
        for (int64_t i = 0; i < n; ++i) {
            const float* xi = x + i * ldx;
            float acc = 0.0f;
            for (int64_t k = 0; k < w.cols; ++k) acc += xi[k] * row[static_cast<size_t>(k)];
            y[i * ldy + o] = acc;
        }
    }
}

// Rows per parallel chunk: about 64K weights, so the thread start-up cost stays small.
int64_t row_grain(int64_t cols) {
    return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, cols));
}

}  // namespace

CpuIsa best_cpu_isa() {
    static const CpuIsa isa = [] {
        CpuIsa best = CpuIsa::kPortable;
#if QLORA_CPU_AVX2_KERNELS
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = CpuIsa::kAvx2;
        if (best == CpuIsa::kAvx2 && __builtin_cpu_supports("avx512f")) best = CpuIsa::kAvx512;
#endif
        const char* env = std::getenv("QLORA_CPU_ISA");
        if (env != nullptr && std::strcmp(env, "portable") == 0) best = CpuIsa::kPortable;
        if (env != nullptr && std::strcmp(env, "avx2") == 0) best = std::min(best, CpuIsa::kAvx2);
        return best;
    }();
    return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
    switch (isa) {
        case CpuIsa::kAvx512:
            return "avx512";
        case CpuIsa::kAvx2:
            return "avx2";
        default:
            return "portable";
    }
}

void quant4_dequant_tile(const Packed4bitMatrix& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                         float* out, int64_t ldo, CpuIsa isa) {
    float table[16];
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t row_start = r * w.cols;
        float* dst = out + (r - r0) * ldo;
        for (int64_t e = row_start + c0; e < row_start + c1;) {
            const int64_t block = e / w.blocksize;
            const int64_t end = std::min(row_start + c1, (block + 1) * w.blocksize);
            scaled_table(w, block, table);
            const int64_t g = group_width(isa);
            if (isa == CpuIsa::kAvx512 && e % g == 0 && end % g == 0) {
                detail::dequant_segment_avx512(w.packed, e, end, table, dst);
            } else if (isa != CpuIsa::kPortable && e % 16 == 0 && end % 16 == 0) {
                detail::dequant_segment_avx2(w.packed, e, end, table, dst);
            } else {
                dequant_segment_scalar(w.packed, e, end, table, dst);
            }
            dst += end - e;
            e = end;
        }
    }
}

void quant4_gemv_xwt(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx, float* y,
                     int64_t ldy, CpuIsa isa) {
    if (n <= 0 || w.rows <= 0) return;
    if (isa == CpuIsa::kAvx512 && w.cols % 32 != 0) isa = CpuIsa::kAvx2;
    if (isa != CpuIsa::kPortable && w.cols % 16 == 0) {
        // Regrouped x is small (n*cols floats) and read by every thread; one buffer per caller
        // thread.
        thread_local std::vector<float> xg;
        xg.resize(static_cast<size_t>(n * w.cols));
        regroup_x(x, n, ldx, w.cols, group_width(isa), xg.data());
        const float* xgp = xg.data();
        at::parallel_for(0, w.rows, row_grain(w.cols), [&](int64_t o0, int64_t o1) {
            if (isa == CpuIsa::kAvx512) {
                detail::gemv_rows_avx512(w, xgp, n, o0, o1, y, ldy);
            } else {
                detail::gemv_rows_avx2(w, xgp, n, o0, o1, y, ldy);
            }
        });
        return;
    }
    at::parallel_for(0, w.rows, row_grain(w.cols), [&](int64_t o0, int64_t o1) {
        gemv_rows_portable(w, x, n, ldx, o0, o1, y, ldy);
    });
}

void quant4_matmul_xwt_ref(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx,
                           float* y, int64_t ldy) {
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t o = 0; o < w.rows; ++o) {
            double acc = 0.0;  // products of two floats are exact in double
            for (int64_t k = 0; k < w.cols; ++k) {
                acc += static_cast<double>(x[i * ldx + k]) * deq_element(w, o * w.cols + k);
            }
            y[i * ldy + o] = static_cast<float>(acc);
        }
    }
}

void quant4_matmul_xwt_abs_ref(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx,
                               float* y, int64_t ldy) {
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t o = 0; o < w.rows; ++o) {
            double acc = 0.0;
            for (int64_t k = 0; k < w.cols; ++k) {
                acc +=
                    std::fabs(static_cast<double>(x[i * ldx + k]) * deq_element(w, o * w.cols + k));
            }
            y[i * ldy + o] = static_cast<float>(acc);
        }
    }
}

void quant4_matmul_gw_ref(const Packed4bitMatrix& w, const float* g, int64_t n, int64_t ldg,
                          float* dx, int64_t lddx) {
    std::vector<double> acc(static_cast<size_t>(w.cols));
    for (int64_t i = 0; i < n; ++i) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t o = 0; o < w.rows; ++o) {
            const double gi = g[i * ldg + o];
            for (int64_t k = 0; k < w.cols; ++k)
                acc[static_cast<size_t>(k)] += gi * deq_element(w, o * w.cols + k);
        }
        for (int64_t k = 0; k < w.cols; ++k)
            dx[i * lddx + k] = static_cast<float>(acc[static_cast<size_t>(k)]);
    }
}

}  // namespace qlora::kernels
