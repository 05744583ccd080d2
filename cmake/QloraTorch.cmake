# Finds LibTorch inside the torch wheel of a Python environment (the setup venv by default:
# $QLORA_DEPS, else ~/.cache/qlora-cpp/venv; -DQLORA_PYTHON=... picks any python with torch).
if(NOT QLORA_PYTHON)
    if(DEFINED ENV{QLORA_DEPS})
        set(_qlora_venv $ENV{QLORA_DEPS})
    else()
        set(_qlora_venv $ENV{HOME}/.cache/qlora-cpp/venv)
    endif()
    set(QLORA_PYTHON ${_qlora_venv}/bin/python CACHE FILEPATH "Python whose torch wheel provides LibTorch")
endif()
execute_process(
    COMMAND ${QLORA_PYTHON} -c "import torch,torch.utils;print(torch.utils.cmake_prefix_path);print(torch.__version__);print(torch.version.cuda)"
    OUTPUT_VARIABLE _qlora_torch_out ERROR_VARIABLE _qlora_torch_err RESULT_VARIABLE _qlora_torch_rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _qlora_torch_rc EQUAL 0)
    message(FATAL_ERROR "qlora: cannot import torch with ${QLORA_PYTHON}: ${_qlora_torch_err}\n"
                        "HINT: run scripts/setup.sh, or pass -DQLORA_PYTHON=/path/to/python-with-torch")
endif()
string(REPLACE "\n" ";" _qlora_torch_out "${_qlora_torch_out}")
list(GET _qlora_torch_out 0 QLORA_TORCH_PREFIX)
list(GET _qlora_torch_out 1 QLORA_TORCH_VERSION)
list(GET _qlora_torch_out 2 QLORA_TORCH_CUDA)
message(STATUS "qlora: torch ${QLORA_TORCH_VERSION} (CUDA ${QLORA_TORCH_CUDA}) from ${QLORA_PYTHON}")
list(APPEND CMAKE_PREFIX_PATH ${QLORA_TORCH_PREFIX})

if(QLORA_HAS_CUDA)
    # The wheel's CMake files look for nvtx3 headers; the toolkit ships them under include/nvtx3.
    if(NOT nvtx3_dir)
        set(nvtx3_dir ${CUDAToolkit_INCLUDE_DIRS} CACHE PATH "folder holding nvtx3/")
    endif()
    # With no GPU present torch cannot detect an architecture; name ours ("80;90" -> "8.0;9.0").
    # Torch then adds the -gencode flags for them to CMAKE_CUDA_FLAGS; qlora_core uses those.
    if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
        string(REGEX REPLACE "([0-9])([0-9a]+)" "\\1.\\2" _qlora_arch_list "${QLORA_CUDA_ARCHITECTURES}")
        set(ENV{TORCH_CUDA_ARCH_LIST} "${_qlora_arch_list}")
    endif()
endif()
find_package(Torch REQUIRED)
