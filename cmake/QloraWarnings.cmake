# Warnings on for our own code; LibTorch and the Debian libraries come in as system headers.
# GCC 12 at -O3 reports libstdc++'s own memcpy inside `"literal" + std::string(...)` as
# -Wstringop-overflow / -Wstringop-overread / -Warray-bounds / -Wrestrict (GCC bugs 105329, 105651;
# fixed in GCC 13): false positives on correct code, so those four are off for GCC 12 and older.
function(qlora_set_warnings target)
    set(_gcc12 "$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>")
    target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor>
        $<${_gcc12}:-Wno-stringop-overflow -Wno-stringop-overread -Wno-array-bounds -Wno-restrict>
        $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${QLORA_WERROR}>>:-Werror>
        $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --expt-relaxed-constexpr>
        $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${QLORA_WERROR}>>:-Werror=all-warnings>)
endfunction()
