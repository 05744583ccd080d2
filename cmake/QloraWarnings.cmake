# Warnings on for our own code; LibTorch and the Debian libraries come in as system headers.
function(qlora_set_warnings target)
    target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor>
        $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${QLORA_WERROR}>>:-Werror>
        $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --expt-relaxed-constexpr>
        $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${QLORA_WERROR}>>:-Werror=all-warnings>)
endfunction()
