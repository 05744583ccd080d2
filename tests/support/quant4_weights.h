// Random 4-bit test weights with their raw kernel view (kernels::Packed4bitMatrix), and a guard
// that restores the process-wide matmul path knobs: shared by the fused-matmul tests.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "kernels/quant4_matmul_cpu.h"
#include "quant/quant4_matmul.h"
#include "quant/quant4_ops.h"
#include "quant/quant4_tensor.h"

namespace qlora::test {

// Restores quant::quant4_matmul_tuning() at the end of a scope.
struct TuningGuard {
    quant::Quant4MatmulTuning saved = quant::quant4_matmul_tuning();
    ~TuningGuard() { quant::quant4_matmul_tuning() = saved; }
};

// A 4-bit weight and the raw view the kernels take (pointing into w's tensors).
struct RawWeight {
    quant::Quant4Tensor w;
    kernels::Packed4bitMatrix m;
};

inline RawWeight raw_of(const quant::Quant4Tensor& w) {
    RawWeight r{w, {}};
    r.m.packed = w.packed().data_ptr<uint8_t>();
    if (w.double_quant()) {
        r.m.absmax_codes = w.absmax().data_ptr<uint8_t>();
        r.m.nested = w.nested_absmax().data_ptr<float>();
        r.m.map = w.nested_code().data_ptr<float>();
        r.m.offset = w.nested_offset();
    } else {
        r.m.absmax = w.absmax().data_ptr<float>();
    }
    r.m.code_values = quant::codebook(w.type()).values;
    r.m.rows = w.shape()[0];
    r.m.cols = w.shape()[1];
    r.m.blocksize = w.blocksize();
    return r;
}

// N(0, 0.05²) weights [out, in] quantized with the given options, from a seeded generator.
inline quant::Quant4Tensor random_weight(int64_t out, int64_t in, quant::QuantType type,
                                         int64_t blocksize, bool dq, uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return quant::Quant4Tensor::quantize(at::randn({out, in}, gen) * 0.05, {type, blocksize, dq},
                                         "w");
}

}  // namespace qlora::test
