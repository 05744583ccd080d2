#!/usr/bin/env bash
# libFuzzer runs of the parser targets in fuzz/ (clang 14 from Debian, ASan + UBSan).
#   scripts/fuzz.sh TARGET SECONDS     run one target (safetensors or fuzz_safetensors) for SECONDS
#   scripts/fuzz.sh --smoke [SECONDS]  every target for SECONDS each (default 20)
#   scripts/fuzz.sh --ci [RUNS]        every target on its seeds plus RUNS (default 2000) mutations
#                                      from a fixed seed (-seed=1): deterministic, what .ci/run runs
#   scripts/fuzz.sh --unit             the sanitizer unit-test job: the parsers' unit tests (io,
#                                      tokenizer, jinja, chat, config, records) built with ASan + UBSan
#                                      against the instrumented parser objects, then run
#   scripts/fuzz.sh --build            configure and build build-fuzz only
#   scripts/fuzz.sh --list             the targets
# The build folder is build-fuzz (QLORA_FUZZ_BUILD); when an ordinary build's libqlora_core.a
# exists (in QLORA_BUILD_DIR, default build/) only the parser sources are compiled again,
# instrumented. Seeds come from fuzz/corpus/<target>/ (kept small, in the repository); new inputs
# go to build-fuzz/corpus/<target>/, crashes to build-fuzz/artifacts/<target>/. Exit status: 0 when no target found anything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${QLORA_FUZZ_BUILD:-$ROOT/build-fuzz}
JOBS=${QLORA_FUZZ_JOBS:-2}
PYTHON=${QLORA_PYTHON:-$HOME/.cache/qlora-cpp/venv/bin/python}
export QLORA_FUZZ_TOKENIZER_MODEL=${QLORA_FUZZ_TOKENIZER_MODEL:-$ROOT/../shared/data/stories260K/tok512.model}

targets() { ls fuzz/fuzz_*.cpp | sed 's|fuzz/||; s|\.cpp$||' | grep -v '^fuzz_support$'; }

build() {
    if [[ ! -f $BUILD/build.ninja ]]; then
        local core=()
        local lib=${QLORA_BUILD_DIR:-$ROOT/build}/libqlora_core.a  # the ordinary build's library
        [[ -f $lib ]] && core=(-DQLORA_FUZZ_CORE_LIB="$lib")
        CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQLORA_FUZZ=ON \
            -DQLORA_BUILD_TESTS=OFF -DQLORA_PYTHON="$PYTHON" "${core[@]}" >/dev/null
    fi
    cmake --build "$BUILD" -j"$JOBS" --target $(targets)
}

# Largest input per target: enough for every seed and for the structures each format nests.
max_len() {
    case $1 in
        fuzz_records) echo 65536 ;;
        fuzz_safetensors|fuzz_trainer_state|fuzz_gguf|fuzz_tokenizer_json) echo 16384 ;;
        fuzz_chat_template) echo 32768 ;;
        *) echo 8192 ;;
    esac
}

# run TARGET SECONDS [RUNS]: fuzz for SECONDS, or for RUNS inputs from the fixed seed 1.
run() {
    local target=$1 seconds=$2 runs=${3:-}
    local corpus=$BUILD/corpus/$target artifacts=$BUILD/artifacts/$target/
    mkdir -p "$corpus" "$artifacts"
    [[ -d fuzz/corpus/$target ]] && cp -n fuzz/corpus/$target/* "$corpus"/ 2>/dev/null || true
    # The real chat templates of ../shared seed the template target (read there, never copied in).
    if [[ $target == fuzz_chat_template && -d $ROOT/../shared/data/chat_templates ]]; then
        cp -n "$ROOT"/../shared/data/chat_templates/*.jinja "$corpus"/ 2>/dev/null || true
    fi
    echo "== $target: ${runs:+$runs inputs from seed 1, at most }$seconds s"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$BUILD/fuzz/$target" "$corpus" -max_total_time="$seconds" ${runs:+-runs=$runs -seed=1} \
        -timeout=10 -rss_limit_mb=4096 \
        -max_len="$(max_len "$target")" -artifact_prefix="$artifacts" -print_final_stats=1 2>&1 |
        grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|FUZZ FINDING|ERROR:|SUMMARY:|Test unit written" || true
    local found
    found=$(ls "$artifacts" | wc -l)
    [[ $found -eq 0 ]] || { echo "$target: $found finding(s) in $artifacts"; return 1; }
}

case ${1:-} in
    --list) targets ;;
    --build) build ;;
    --unit)
        build >/dev/null
        cmake --build "$BUILD" -j"$JOBS" --target sanitized_unit_tests >/dev/null
        echo "== sanitized_unit_tests (ASan + UBSan)"
        ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
            "$BUILD/fuzz/sanitized_unit_tests" --gtest_brief=1 ;;
    --smoke)
        build >/dev/null
        status=0
        for t in $(targets); do run "$t" "${2:-20}" || status=1; done
        exit $status ;;
    --ci)
        build >/dev/null
        status=0
        for t in $(targets); do run "$t" 600 "${2:-2000}" || status=1; done
        exit $status ;;
    ""|-h|--help) sed -n '2,15p' "$0"; exit 2 ;;
    *)
        target=$1
        [[ $target == fuzz_* ]] || target=fuzz_$target
        [[ -f fuzz/$target.cpp ]] || { echo "unknown target $1; one of: $(targets | tr '\n' ' ')"; exit 2; }
        build >/dev/null
        run "$target" "${2:-60}" ;;
esac
