// Fake quantization for quantization-aware training (DESIGN.md section 11): Q(w) = deq(quant(w))
// computed in float32, and straight-through-estimator (STE) autograd functions around it.
//
// The schemes, exactly (the scalar truth is fake_quant_ref.h; the exports must reproduce these):
//   int4  symmetric per group of `group_size` consecutive elements along the input dim of a weight
//         [out, in] (a row's last group may be shorter when in % group_size != 0). It is ggml's
//         Q4_0 arithmetic: m = the group's element of largest magnitude (the first on ties),
//         d = m / -8, code = min(15, trunc(w·(1/d) + 8.5)), Q(w) = (code - 8)·fp16(d).
//         So group 32 is exactly gguf Q4_0 when in % 32 == 0; an all-zero group gives zeros.
//   int8  symmetric per output channel (row): d = max|w_row| / 127 (float32),
//         Q(w) = clamp(round_half_even(w / d), -127, 127)·d; an all-zero row gives zeros.
//   nf4   our blockwise NF4 over the flattened tensor (quant/quant4_ops.h), with double quant as
//         configured: Q(w) = deq(quantize_4bit(w)) bit for bit, as the hf-nf4 export stores it.
//   activations int8, per token (each row of x [..., in]), dynamic and asymmetric:
//         lo = min(min(x_row), 0), hi = max(max(x_row), 0), d = max((hi - lo) / 255, FLT_EPSILON),
//         z = clamp(-128 - round(lo / d), -128, 127), q = round(x / d) + z,
//         Q(x) = (clamp(q, -128, 127) - z)·d   (rounding half to even throughout).
//
// The STE: dL/dw = dL/dQ where w lies inside the scheme's clipping range and 0 outside, the
// scales being treated as constants (as torchao's fake quantizers do). "Inside" means the
// unclamped integer code already lay in the code range, so the clamp did not move it:
//   int4  range (code before min) <= 15. Q4_0's scale maps the group's largest magnitude to -8,
//         so the opposite end reaches +8 and only elements of the other sign with
//         w·(1/d) >= 7.5 (|w| >= 15/16·|m|) are clipped: they get no gradient.
//   int8  the scale maps max|w_row| to 127 and nothing is clipped: the gradient passes everywhere.
//   nf4   codes are chosen against the block's true absmax, |w / absmax| <= 1 = the codebook's
//         end, so nothing is clipped (double quant then rescales the whole block, which moves no
//         code): the gradient passes everywhere.
//   act   the range [(-128 - z)·d, (127 - z)·d] covers [lo, hi] up to the rounding of z; an
//         element whose code the clamp moved (possible only at the ends) gets no gradient.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "core/enum_names.h"
#include "quant/quant4_tensor.h"

namespace qlora::quant {

enum class FakeQuantWeight { kInt4, kInt8, kNF4 };

// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kFakeQuantWeightNames =
    enum_names<FakeQuantWeight>("fake-quant weight scheme", {{FakeQuantWeight::kInt4, "int4"},
                                                             {FakeQuantWeight::kNF4, "nf4"},
                                                             {FakeQuantWeight::kInt8, "int8"}});
FakeQuantWeight parse_fake_quant_weight(std::string_view name);
std::string fake_quant_weight_name(FakeQuantWeight value);

struct QatScheme {
    FakeQuantWeight weight = FakeQuantWeight::kNF4;
    int64_t group_size = 32;  // int4 only: power of two in [32, 256]
    Quant4Options nf4;        // nf4 only: blocksize and double quant of the 4-bit format

    static QatScheme int4(int64_t group_size) { return {FakeQuantWeight::kInt4, group_size, {}}; }
};
// Throws qlora::Error naming the bad field (int4 group size, nf4 type/blocksize).
void validate(const QatScheme& scheme);

struct FakeQuantized {
    at::Tensor value;  // float32, the input's shape: Q(w)
    at::Tensor mask;   // bool, the input's shape: inside the clipping range; undefined = all inside
};

// Q(w) as float32 [out, in] (nf4: any shape). w: float32/float16/bfloat16 on CPU or CUDA,
// computed in float32. What a QAT forward uses and what an export must write.
at::Tensor fake_quantize_weight(const at::Tensor& w, const QatScheme& scheme);
// The same value plus the STE mask (undefined for int8 and nf4, which clip nothing).
FakeQuantized fake_quantize_weight_masked(const at::Tensor& w, const QatScheme& scheme);
// Q(x) per token, float32 of x's shape [..., in], with the STE mask.
FakeQuantized fake_quantize_activation(const at::Tensor& x);

// STE autograd: forward Q(w) (in w's dtype), backward dL/dw = mask ⊙ dL/dQ. The scheme's
// scales are constants of the backward.
at::Tensor fake_quant_weight_ste(const at::Tensor& w, const QatScheme& scheme);
// Forward Q(x) per token in x's dtype, backward mask ⊙ dL/dQ.
at::Tensor fake_quant_activation_ste(const at::Tensor& x);

}  // namespace qlora::quant
