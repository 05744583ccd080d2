#!/usr/bin/env bash
# Sets up, configures, builds (Release, all cores) and runs the whole test suite with CTest.
#   scripts/test.sh                 # everything
#   scripts/test.sh -L unit         # extra arguments go to ctest (labels: unit, integration, interop, cuda)
# QLORA_BUILD_DIR picks the build folder (default: build/ in the tree, git-ignored).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/setup.sh" --print-python)"
build="${QLORA_BUILD_DIR:-$root/build}"
jobs="$(nproc)"

werror=OFF
[[ -n "${CI:-}" ]] && werror=ON

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DQLORA_PYTHON="$python" -DQLORA_WERROR="$werror" >/dev/null
cmake --build "$build" --parallel "$jobs"
ctest --test-dir "$build" --output-on-failure --parallel "$jobs" "$@"
