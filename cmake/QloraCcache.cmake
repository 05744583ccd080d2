# Use ccache (cache outside the work tree) when it is installed: LibTorch-heavy rebuilds drop to seconds.
find_program(QLORA_CCACHE ccache)
if(QLORA_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
    set(CMAKE_CXX_COMPILER_LAUNCHER ${QLORA_CCACHE})
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${QLORA_CCACHE})
endif()
