// QLORA_CUDA_CHECK for launchers: every CUDA call and every launch is checked; the launcher returns
// the error to its LibTorch binding, which turns it into a message naming the op.
#pragma once

#include <cuda_runtime_api.h>

#define QLORA_CUDA_RETURN_IF_ERROR(expr)                  \
    do {                                                  \
        cudaError_t qlora_err_ = (expr);                  \
        if (qlora_err_ != cudaSuccess) return qlora_err_; \
    } while (0)
