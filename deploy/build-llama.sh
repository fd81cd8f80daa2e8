#!/usr/bin/env bash
# Build llama-cpp-python from source for this machine and install it into a venv.
#
#   deploy/build-llama.sh VENV [EXTRA_CMAKE_ARGS...]
#   deploy/build-llama.sh --print-key [EXTRA_CMAKE_ARGS...]    the build's key, nothing built
#   deploy/build-llama.sh --print-flags [EXTRA_CMAKE_ARGS...]  the flags it would build with
#
# Why a script of our own instead of `pip install llama-cpp-python`:
# - llama.cpp builds natively (-march=native), which on CPUs with AMX tiles (Intel Sapphire
#   Rapids and later) compiles in ggml's AMX path; it segfaults on Q4_1 and is reported to
#   give wrong results for Q4_0/Q4_1. On x86-64 we tell the compiler there is no AMX, so the
#   path is never compiled; every other native kernel (AVX-512, VNNI...) stays.
# - pip's wheel cache ignores CMAKE_ARGS and CFLAGS: a wheel built with other flags would be
#   reused silently. The wheel is kept instead in a folder named by a hash of everything
#   that shapes it (version, CMake arguments, compiler flags, compiler, CPU features), so a
#   change of any of them builds anew, and an unchanged one installs in seconds.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
# The multimodal tools, the examples and the C++ tools are not needed.
BASE_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
NO_AMX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
CACHE_ROOT=${ASSISTANT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/assistant/wheels}

print_only=""
if [[ ${1:-} == --print-key || ${1:-} == --print-flags ]]; then
    print_only=$1
    shift
    venv=""
else
    venv=${1:?usage: build-llama.sh VENV [EXTRA_CMAKE_ARGS...]}
    shift
fi

version=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' "$REPO_DIR/pyproject.toml")
[[ -n $version ]] || { echo "error: no llama-cpp-python pin in pyproject.toml" >&2; exit 1; }

cmake_args="$BASE_CMAKE_ARGS${*:+ $*}${CMAKE_ARGS:+ $CMAKE_ARGS}"
cflags=${CFLAGS:-}
cxxflags=${CXXFLAGS:-}
case $(uname -m) in
    x86_64 | amd64 | i?86)
        cflags="$cflags $NO_AMX_FLAGS"
        cxxflags="$cxxflags $NO_AMX_FLAGS" ;;
esac
cflags=${cflags# } cxxflags=${cxxflags# }

# A native build is only valid on a CPU with the same features: they are part of the key.
cpu_features=$( (grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m) | cut -d: -f2 | tr ' ' '\n' | sort -u | tr '\n' ' ')
compiler=$( (${CC:-cc} --version 2>/dev/null || echo none) | head -1)
key=$(printf '%s\n' "llama-cpp-python==$version" "cmake: $cmake_args" "cflags: $cflags" \
    "cxxflags: $cxxflags" "compiler: $compiler" "cpu: $cpu_features" | sha256sum | cut -c1-16)
case $print_only in
    --print-key) echo "$key"; exit 0 ;;
    --print-flags) echo "CMAKE_ARGS=\"$cmake_args\" CFLAGS=\"$cflags\" CXXFLAGS=\"$cxxflags\""; exit 0 ;;
esac

stamp="$venv/.llama-cpp-python-build"
if [[ -f $stamp && $(cat "$stamp") == "$key" ]] &&
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$version')" 2>/dev/null; then
    echo "llama-cpp-python $version: up to date (build $key)"
    exit 0
fi

wheel_dir="$CACHE_ROOT/llama-cpp-python-$version-$key"
if ! compgen -G "$wheel_dir/llama_cpp_python-*.whl" >/dev/null; then
    echo "llama-cpp-python $version: compiling (a few minutes) with"
    echo "  CMAKE_ARGS=\"$cmake_args\""
    echo "  CFLAGS=\"$cflags\" CXXFLAGS=\"$cxxflags\""
    mkdir -p "$CACHE_ROOT"
    tmp_dir=$(mktemp -d "$CACHE_ROOT/.tmp.XXXXXX")
    trap 'rm -rf "$tmp_dir"' EXIT
    CMAKE_ARGS="$cmake_args" CFLAGS="$cflags" CXXFLAGS="$cxxflags" \
        "$venv/bin/python" -m pip wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
        -w "$tmp_dir" "llama-cpp-python==$version"
    rm -rf "$wheel_dir"
    chmod 755 "$tmp_dir"
    mv "$tmp_dir" "$wheel_dir"  # a complete wheel folder or none
    trap - EXIT
fi
"$venv/bin/python" -m pip install --force-reinstall --no-deps "$wheel_dir"/llama_cpp_python-*.whl
printf '%s\n' "$key" >"$stamp"
echo "llama-cpp-python $version: installed (build $key)"
