#!/usr/bin/env bash
# Formatting check: every tracked C++/CUDA file must be exactly what clang-format makes of it with
# the repository's .clang-format. Lists the files that differ (and how to fix them) and fails.
#   scripts/check_format.sh          # exit 0 when the tree is formatted
#   scripts/check_format.sh --fix    # formats the tree in place
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian's clang-format 14 is the pinned formatter: another major version formats differently.
formatter="$(command -v clang-format-14 || command -v clang-format || true)"
if [[ -z "$formatter" ]]; then
    echo "check_format: clang-format (14) not found; install Debian's clang-format-14" >&2
    exit 2
fi

mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
if [[ "${1:-}" == "--fix" ]]; then
    "$formatter" -i "${files[@]}"
    exit 0
fi

bad=()
for f in "${files[@]}"; do
    if ! "$formatter" --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if ((${#bad[@]})); then
    echo "check_format: ${#bad[@]} of ${#files[@]} files are not clang-formatted:" >&2
    printf '  %s\n' "${bad[@]:0:20}" >&2
    ((${#bad[@]} > 20)) && echo "  ... and $((${#bad[@]} - 20)) more" >&2
    echo "fix with: scripts/check_format.sh --fix" >&2
    exit 1
fi
echo "check_format: ${#files[@]} files formatted"
