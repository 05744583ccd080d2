// Q4_0 codes as float32 tensor ops (quant/int4_codes.h).
#include "quant/int4_codes.h"

namespace qlora::quant {

Int4Groups int4_groups(const at::Tensor& w, int64_t group) {
    const int64_t rows = w.size(0), cols = w.size(1);
    const int64_t groups = (cols + group - 1) / group;
    at::Tensor x = at::constant_pad_nd(w, {0, groups * group - cols}).view({rows, groups, group});
    at::Tensor m = x.gather(2, x.abs().argmax(2, /*keepdim=*/true));  // first largest magnitude
    at::Tensor d = m * -0.125;  // = m / -8 exactly (a power of two)
    at::Tensor id = at::where(d != 0, d.reciprocal(), at::zeros_like(d));
    at::Tensor shifted = x * id + 8.5;  // in [0.5, 16.5]
    return {shifted.trunc().clamp_max_(15.0), d, shifted < 16.0};
}

}  // namespace qlora::quant
