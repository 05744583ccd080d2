// The lane sum of a __m512 in a fixed order, for the translation units compiled with -mavx512f
// (quant4_matmul_cpu_avx512.cpp, quant4_matmul_cpu_vnni.cpp). GCC 12's _mm512_reduce_add_ps
// trips -Wuninitialized in its own header, hence the store and a plain loop.
#pragma once

#include <immintrin.h>

namespace qlora::kernels::detail {
namespace {  // each including TU gets its own copy, compiled with that TU's ISA flags

inline float horizontal_sum(__m512 v) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    float s = 0.0f;
    for (float lane : lanes) s += lane;
    return s;
}

}  // namespace
}  // namespace qlora::kernels::detail
