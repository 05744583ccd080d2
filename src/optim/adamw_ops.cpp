// Checks and device dispatch for the AdamW updates.
#include "optim/adamw_ops.h"

#include <ATen/Parallel.h>

#include "optim/state_maps.h"

#ifdef QLORA_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/adamw_cuda.h"
#endif

namespace qlora::optim {
namespace {

void check_same(const char* op, const char* what, const at::Tensor& t, const at::Tensor& param,
                at::ScalarType dtype, int64_t numel) {
    TORCH_CHECK(t.defined(), op, ": ", what, " is undefined");
    TORCH_CHECK(t.scalar_type() == dtype, op, ": ", what, " must be ", dtype, ", got ",
                t.scalar_type());
    TORCH_CHECK(t.numel() == numel, op, ": ", what, " must have ", numel, " elements, got ",
                t.numel());
    TORCH_CHECK(t.device() == param.device(), op, ": ", what, " is on ", t.device(),
                " but the parameter on ", param.device());
    TORCH_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous");
}

#ifdef QLORA_WITH_CUDA
void check_cuda(cudaError_t err, const char* op) {
    TORCH_CHECK(err == cudaSuccess, op, ": CUDA error: ", cudaGetErrorString(err));
}
#endif

// Element ranges per CPU task: big enough that thread start-up stays negligible.
constexpr int64_t kCpuGrain = 1 << 15;

}  // namespace

void adamw_step(const at::Tensor& grad, at::Tensor& param, at::Tensor& m, at::Tensor& v,
                const AdamwScalars& s) {
    const int64_t n = param.numel();
    check_same("adamw_step", "param", param, param, at::kFloat, n);
    check_same("adamw_step", "grad", grad, param, at::kFloat, n);
    check_same("adamw_step", "m", m, param, at::kFloat, n);
    check_same("adamw_step", "v", v, param, at::kFloat, n);
    const float* g = grad.data_ptr<float>();
    float* p = param.data_ptr<float>();
    float* mp = m.data_ptr<float>();
    float* vp = v.data_ptr<float>();
    if (param.is_cuda()) {
#ifdef QLORA_WITH_CUDA
        c10::cuda::CUDAGuard guard(param.device());
        check_cuda(kernels::adamw_step_cuda(g, p, mp, vp, n, s, at::cuda::getCurrentCUDAStream()),
                   "adamw_step");
#else
        TORCH_CHECK(false, "adamw_step: this build has no CUDA kernels (configured without nvcc)");
#endif
        return;
    }
    at::parallel_for(0, n, kCpuGrain, [&](int64_t begin, int64_t end) {
        adamw_step_ref(g + begin, p + begin, mp + begin, vp + begin, end - begin, s);
    });
}

void adamw8bit_step(const at::Tensor& grad, at::Tensor& param, at::Tensor& m_codes,
                    at::Tensor& v_codes, at::Tensor& m_absmax, at::Tensor& v_absmax,
                    const AdamwScalars& s) {
    const int64_t n = param.numel();
    const int64_t blocks = state_blocks(n);
    check_same("adamw8bit_step", "param", param, param, at::kFloat, n);
    check_same("adamw8bit_step", "grad", grad, param, at::kFloat, n);
    check_same("adamw8bit_step", "m_codes", m_codes, param, at::kByte, n);
    check_same("adamw8bit_step", "v_codes", v_codes, param, at::kByte, n);
    check_same("adamw8bit_step", "m_absmax", m_absmax, param, at::kFloat, blocks);
    check_same("adamw8bit_step", "v_absmax", v_absmax, param, at::kFloat, blocks);
    const StateMaps& sm = state_maps(param.device());
    const Blockwise8bitMaps maps{
        sm.signed_map.data_ptr<float>(), sm.signed_midpoints.data_ptr<float>(),
        sm.unsigned_map.data_ptr<float>(), sm.unsigned_midpoints.data_ptr<float>()};
    const float* g = grad.data_ptr<float>();
    float* p = param.data_ptr<float>();
    uint8_t* mc = m_codes.data_ptr<uint8_t>();
    uint8_t* vc = v_codes.data_ptr<uint8_t>();
    float* ma = m_absmax.data_ptr<float>();
    float* va = v_absmax.data_ptr<float>();
    if (param.is_cuda()) {
#ifdef QLORA_WITH_CUDA
        c10::cuda::CUDAGuard guard(param.device());
        check_cuda(kernels::adamw8bit_step_cuda(g, p, mc, vc, ma, va, maps, n, s,
                                                at::cuda::getCurrentCUDAStream()),
                   "adamw8bit_step");
#else
        TORCH_CHECK(false,
                    "adamw8bit_step: this build has no CUDA kernels (configured without nvcc)");
#endif
        return;
    }
    at::parallel_for(0, blocks, kCpuGrain / kStateBlocksize, [&](int64_t begin, int64_t end) {
        adamw8bit_step_ref(g, p, mc, vc, ma, va, maps, n, begin, end, s);
    });
}

}  // namespace qlora::optim
