// RoPE tables and rotation. The operation order mirrors transformers' float32 arithmetic
// (including Python's `a / t` being reciprocal(t)·a) so the tables agree bit for bit.
#include "model/rope.h"

#include <cmath>

#include "core/error.h"

namespace qlora::model {

at::Tensor rope_inv_freq(const LlamaConfig& config) {
    const int64_t dim = config.head_dim;
    // 1 / theta^(arange(0, D, 2) / D)   [D/2]
    at::Tensor exponent = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / dim;
    at::Tensor inv_freq = at::pow(config.rope_theta, exponent).reciprocal();
    const RopeScaling& s = config.rope_scaling;
    if (s.type == "default") return inv_freq;
    if (s.type == "linear") return inv_freq / s.factor;
    QLORA_CHECK(s.type == "llama3", "rope_scaling type '", s.type, "' is not supported");
    // Llama 3.1: wavelengths longer than original_ctx / low_freq_factor are slowed by `factor`,
    // shorter than original_ctx / high_freq_factor kept, and the band between interpolated.
    const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_ctx / s.low_freq_factor;
    const double high_wavelen = old_ctx / s.high_freq_factor;
    at::Tensor wavelen = inv_freq.reciprocal() * (2.0 * M_PI);
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq);
    at::Tensor smooth = (wavelen.reciprocal() * old_ctx - s.low_freq_factor) /
                        (s.high_freq_factor - s.low_freq_factor);
    at::Tensor smoothed = at::rsub(smooth, 1.0) * scaled / s.factor + smooth * scaled;
    at::Tensor medium =
        (wavelen < high_wavelen).logical_not() & (wavelen > low_wavelen).logical_not();
    return at::where(medium, smoothed, scaled);
}

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& inv_freq,
                                               const at::Tensor& positions, c10::ScalarType dtype) {
    at::Tensor pos = positions.dim() == 1 ? positions.unsqueeze(0) : positions;     // [N, T]
    at::Tensor freqs = pos.unsqueeze(-1).to(at::kFloat) * inv_freq.to(at::kFloat);  // [N, T, D/2]
    at::Tensor emb = at::cat({freqs, freqs}, -1);                                   // [N, T, D]
    return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    const int64_t half = x.size(-1) / 2;
    at::Tensor x1 = x.narrow(-1, 0, half);
    at::Tensor x2 = x.narrow(-1, half, half);
    at::Tensor rotated = at::cat({-x2, x1}, -1);               // rotate_half(x)
    return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);  // cos/sin [N, 1, T, D]
}

}  // namespace qlora::model
