# Use ccache (cache outside the work tree) when it is installed: LibTorch-heavy rebuilds drop to seconds.
# Every translation unit includes the precompiled header, which ccache only caches with the pch
# sloppiness; base_dir makes hits independent of where the checkout lives (worktrees, CI clones).
find_program(QLORA_CCACHE ccache)
if(QLORA_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
    get_filename_component(_qlora_ccache_base "${CMAKE_SOURCE_DIR}/.." ABSOLUTE)
    set(_qlora_ccache ${CMAKE_COMMAND} -E env
        "CCACHE_SLOPPINESS=pch_defines,time_macros"
        "CCACHE_BASEDIR=${_qlora_ccache_base}" ${QLORA_CCACHE})
    set(CMAKE_CXX_COMPILER_LAUNCHER ${_qlora_ccache})
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${_qlora_ccache})
endif()
