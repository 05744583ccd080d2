// Portable bodies, run-time ISA choice and the scalar reference twins of the fused CPU 4-bit
// matmuls (contract and error bound in the header).
#include "kernels/quant4_matmul_cpu.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
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
void dequant_segment_avx2(const uint8_t*, int64_t, int64_t, const float*, uint16_t*) {
    std::abort();
}
void gemv_rows_avx512(const Packed4bitMatrix&, const float*, int64_t, int64_t, int64_t, float*,
                      int64_t) {
    std::abort();
}
void dequant_segment_avx512(const uint8_t*, int64_t, int64_t, const float*, float*) {
    std::abort();
}
void dequant_span_bf16_avx512bw(const Packed4bitMatrix&, int64_t, int64_t, uint16_t*) {
    std::abort();
}
bool cpu_has_avx512bw() { return false; }
void gemv_int8_rows_vnni(const Packed4bitMatrix&, const Int8Activations&, const int8_t*, int64_t,
                         int64_t, float*, int64_t) {
    std::abort();
}
void gemm_int8_tiles_vnni(const Packed4bitMatrix&, const Int8Activations&, const int8_t*, int64_t,
                          int64_t, const Int8Tile&, float*, int64_t) {
    std::abort();
}
bool quantize_activations_int8_vnni(const float*, int64_t, int64_t, Int8Activations&) {
    std::abort();
}
bool cpu_has_avx512_vnni() { return false; }
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

// A table entry as stored: float32, or the high half of an entry already rounded to bf16.
inline void store(float* out, float v) { *out = v; }
inline void store(uint16_t* out, float v) {
    uint32_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    *out = static_cast<uint16_t>(bits >> 16);
}

// Flat elements [e0, e1) of one block into out, any start parity.
template <typename Out>
void dequant_segment_scalar(const uint8_t* packed, int64_t e0, int64_t e1, const float* table,
                            Out* out) {
    int64_t e = e0;
    if (e < e1 && e % 2 != 0) store(out++, table[nibble(packed, e++)]);
    for (; e + 1 < e1; e += 2) {
        const uint8_t byte = packed[e / 2];
        store(out, table[bnb::high_nibble(byte)]);
        store(out + 1, table[bnb::low_nibble(byte)]);
        out += 2;
    }
    if (e < e1) store(out, table[nibble(packed, e)]);
}

// Rounds each entry to bf16 (to nearest even, c10's rounding), kept as a float32 whose low 16
// bits are zero: every weight then rounds exactly as dequantize(bf16) rounds it.
void round_table_to_bf16(float* table) {
    for (int k = 0; k < 16; ++k) {
        table[k] = static_cast<float>(c10::BFloat16(table[k]));
    }
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

CpuIsa avx512_bw_vl_isa() {
#if QLORA_CPU_AVX2_KERNELS
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
    }();
    return has && best_cpu_isa() == CpuIsa::kAvx512 ? CpuIsa::kAvx512 : CpuIsa::kPortable;
#else
    return CpuIsa::kPortable;
#endif
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

namespace {
// Whether the AVX-512BW bf16 body takes flat elements [e0, e1) (its alignment contract).
bool bf16_span_fits(const Packed4bitMatrix& w, int64_t e0, int64_t e1, CpuIsa isa) {
    static const bool bw = detail::cpu_has_avx512bw();
    return isa == CpuIsa::kAvx512 && bw && w.blocksize % 64 == 0 && e0 % 64 == 0 && e1 % 64 == 0;
}

// Flat elements [e0, e1) of one block with the widest body their alignment allows: AVX2 (16), or
// the scalar one; float32 outputs also have an AVX-512F body (32). bf16 rows usually take the
// AVX-512BW span body instead (dequant_tile below).
template <typename Out>
void segment_avx2_or_scalar(const uint8_t* packed, int64_t e0, int64_t e1, const float* table,
                            Out* out, CpuIsa isa) {
    if (isa != CpuIsa::kPortable && e0 % 16 == 0 && e1 % 16 == 0) {
        detail::dequant_segment_avx2(packed, e0, e1, table, out);
    } else {
        dequant_segment_scalar(packed, e0, e1, table, out);
    }
}
void dequant_segment(const uint8_t* packed, int64_t e0, int64_t e1, const float* table, float* out,
                     CpuIsa isa) {
    const int64_t g = group_width(isa);
    if (isa == CpuIsa::kAvx512 && e0 % g == 0 && e1 % g == 0) {
        detail::dequant_segment_avx512(packed, e0, e1, table, out);
    } else {
        segment_avx2_or_scalar(packed, e0, e1, table, out, isa);
    }
}
void dequant_segment(const uint8_t* packed, int64_t e0, int64_t e1, const float* table,
                     uint16_t* out, CpuIsa isa) {
    segment_avx2_or_scalar(packed, e0, e1, table, out, isa);
}

// The tile loop of quant4_dequant_tile(_bf16): one scaled table per block, the widest segment
// body the alignment allows.
template <typename Out>
void dequant_tile(const Packed4bitMatrix& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                  Out* out, int64_t ldo, CpuIsa isa) {
    float table[16];
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t row_start = r * w.cols;
        Out* dst = out + (r - r0) * ldo;
        if constexpr (std::is_same_v<Out, uint16_t>) {
            if (bf16_span_fits(w, row_start + c0, row_start + c1, isa)) {
                detail::dequant_span_bf16_avx512bw(w, row_start + c0, row_start + c1, dst);
                continue;
            }
        }
        for (int64_t e = row_start + c0; e < row_start + c1;) {
            const int64_t block = e / w.blocksize;
            const int64_t end = std::min(row_start + c1, (block + 1) * w.blocksize);
            scaled_table(w, block, table);
            if constexpr (std::is_same_v<Out, uint16_t>) round_table_to_bf16(table);
            dequant_segment(w.packed, e, end, table, dst, isa);
            dst += end - e;
            e = end;
        }
    }
}
}  // namespace

void quant4_dequant_tile(const Packed4bitMatrix& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                         float* out, int64_t ldo, CpuIsa isa) {
    dequant_tile(w, r0, r1, c0, c1, out, ldo, isa);
}

void quant4_dequant_tile_bf16(const Packed4bitMatrix& w, int64_t r0, int64_t r1, int64_t c0,
                              int64_t c1, uint16_t* out, int64_t ldo, CpuIsa isa) {
    dequant_tile(w, r0, r1, c0, c1, out, ldo, isa);
}

bool cpu_has_bf16_dot() {
#if QLORA_CPU_AVX2_KERNELS
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512bf16") != 0;
    }();
    return has;
#else
    return false;
#endif
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

// ---- int8-activation decode -------------------------------------------------------------------

namespace {

constexpr float kInt8Max = 127.0f;

int64_t align64(int64_t bytes) { return (bytes + 63) / 64 * 64; }

// The largest |x| of one group, or +inf when the group holds a NaN or an infinity.
float group_amax(const float* x) {
    float amax = 0.0f;
    for (int64_t t = 0; t < kInt8Group; ++t) {
        if (!std::isfinite(x[t])) return std::numeric_limits<float>::infinity();
        amax = std::max(amax, std::fabs(x[t]));
    }
    return amax;
}

// The quantization rule of one element, shared by the quantizer and the reference twin:
// round-half-even(x · (127 / amax)); |x · 127/amax| <= 127 up to one rounding, so the code fits.
int8_t int8_code(float x, float inverse) {
    return static_cast<int8_t>(std::nearbyint(x * inverse));
}

}  // namespace

int64_t Int8Activations::bytes_for(int64_t rows, int64_t cols) {
    const int64_t groups = rows * (cols / kInt8Group);
    return align64(rows * cols) + align64(groups * 4) + groups * 4;
}

Int8Activations Int8Activations::layout(void* storage, int64_t rows, int64_t cols) {
    auto* base = static_cast<uint8_t*>(storage);
    const int64_t groups = rows * (cols / kInt8Group);
    Int8Activations a;
    a.rows = rows;
    a.cols = cols;
    a.codes = reinterpret_cast<int8_t*>(base);
    a.code_sum = reinterpret_cast<int32_t*>(base + align64(rows * cols));
    a.dot_scale = reinterpret_cast<float*>(base + align64(rows * cols) + align64(groups * 4));
    return a;
}

void int8_code_table(const float* code_values, int8_t out[16]) {
    for (int k = 0; k < 16; ++k) out[k] = int8_code(code_values[k], kInt8Max);
}

bool quant4_int8_gemv_supported(const Packed4bitMatrix& w) {
    static const bool cpu = best_cpu_isa() == CpuIsa::kAvx512 && detail::cpu_has_avx512_vnni();
    const bool power_of_two = w.blocksize > 0 && (w.blocksize & (w.blocksize - 1)) == 0;
    return cpu && power_of_two && w.blocksize % kInt8Group == 0 && w.cols % w.blocksize == 0 &&
           w.rows * (w.cols / w.blocksize) < (int64_t{1} << 31);
}

bool quantize_activations_int8_ref(const float* x, int64_t n, int64_t ldx, Int8Activations& out) {
    const int64_t groups = out.cols / kInt8Group;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t g = 0; g < groups; ++g) {
            const float* src = x + i * ldx + g * kInt8Group;
            const float amax = group_amax(src);
            if (!std::isfinite(amax)) return false;
            const float inverse = int8_inverse(amax);
            const int64_t row_group = i * groups + g;
            int8_t* dst = out.codes + row_group * kInt8Group;
            int32_t sum = 0;
            for (int64_t k = 0; k < kInt8Group; ++k) {
                const int8_t q = int8_code(src[k], inverse);
                dst[int8_code_position(k)] = q;
                sum += q;
            }
            out.code_sum[row_group] = sum;
            out.dot_scale[row_group] = int8_dot_scale(amax);
        }
    }
    return true;
}

bool quantize_activations_int8(const float* x, int64_t n, int64_t ldx, Int8Activations& out) {
    static const bool vnni = detail::cpu_has_avx512_vnni();
    return vnni ? detail::quantize_activations_int8_vnni(x, n, ldx, out)
                : quantize_activations_int8_ref(x, n, ldx, out);
}

void quant4_gemv_xwt_int8(const Packed4bitMatrix& w, const Int8Activations& xq, float* y,
                          int64_t ldy) {
    if (xq.rows <= 0 || w.rows <= 0) return;
    int8_t c8[16];
    int8_code_table(w.code_values, c8);
    if (xq.rows < kInt8GemmMinRows) {
        at::parallel_for(0, w.rows, row_grain(w.cols), [&](int64_t o0, int64_t o1) {
            detail::gemv_int8_rows_vnni(w, xq, c8, o0, o1, y, ldy);
        });
        return;
    }
    const int64_t tiles = (w.rows + detail::kInt8TileRows - 1) / detail::kInt8TileRows;
    at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
        // One tile's scratch per thread, kept between calls (64-byte aligned weights first).
        thread_local std::vector<uint8_t> scratch;
        const int64_t groups = w.cols / kInt8Group, rows = detail::kInt8TileRows;
        const size_t need = static_cast<size_t>(w.cols * rows + groups * rows * 4 + 64);
        if (scratch.size() < need) scratch.resize(need);
        auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) /
                                                64 * 64);
        detail::Int8Tile tile;
        tile.weights = base;
        tile.scale = reinterpret_cast<float*>(base + w.cols * rows);
        detail::gemm_int8_tiles_vnni(w, xq, c8, t0, t1, tile, y, ldy);
    });
}

void quant4_matmul_xwt_int8_ref(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx,
                                float* y, int64_t ldy, float* abs_sum) {
    int8_t c8[16];
    int8_code_table(w.code_values, c8);
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t o = 0; o < w.rows; ++o) {
            double acc = 0.0, acc_abs = 0.0;
            for (int64_t g0 = 0; g0 < w.cols; g0 += kInt8Group) {
                const float amax = group_amax(x + i * ldx + g0);
                const double dot_scale = int8_dot_scale(amax);
                for (int64_t k = g0; k < g0 + kInt8Group; ++k) {
                    const int64_t e = o * w.cols + k;
                    const double term = static_cast<double>(block_scale(w, e / w.blocksize)) *
                                        dot_scale * c8[nibble(w.packed, e)] *
                                        int8_code(x[i * ldx + k], int8_inverse(amax));
                    acc += term;
                    acc_abs += std::fabs(term);
                }
            }
            y[i * ldy + o] = static_cast<float>(acc);
            if (abs_sum != nullptr) abs_sum[i * ldy + o] = static_cast<float>(acc_abs);
        }
    }
}

}  // namespace qlora::kernels
