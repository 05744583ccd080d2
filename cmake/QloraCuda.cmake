# Enables CUDA when nvcc is present (QLORA_CUDA=AUTO) so kernels/*.cu always compile in CI,
# even where no GPU will run them. Sets QLORA_HAS_CUDA and QLORA_CUDA_ARCHITECTURES.
set(QLORA_HAS_CUDA OFF)
set(QLORA_CUDA_ARCHITECTURES "80;86;89;90" CACHE STRING "SM architectures for kernels/*.cu")
if(NOT QLORA_CUDA STREQUAL "OFF")
    if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
        set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
    endif()
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
        set(CMAKE_CUDA_ARCHITECTURES ${QLORA_CUDA_ARCHITECTURES})
        set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 knows no CUDA20 dialect for nvcc; kernels need none
        set(CMAKE_CUDA_STANDARD_REQUIRED ON)
        enable_language(CUDA)
        find_package(CUDAToolkit REQUIRED)
        set(QLORA_HAS_CUDA ON)
    elseif(QLORA_CUDA STREQUAL "ON")
        message(FATAL_ERROR "QLORA_CUDA=ON but no CUDA compiler (nvcc) was found; "
                            "install the CUDA toolkit or configure with -DQLORA_CUDA=AUTO")
    endif()
endif()
message(STATUS "qlora: CUDA kernels ${QLORA_HAS_CUDA} (architectures ${QLORA_CUDA_ARCHITECTURES})")
