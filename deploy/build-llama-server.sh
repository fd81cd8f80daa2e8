#!/usr/bin/env bash
# Build llama.cpp's own C++ `llama-server`, the benchmark peer of issue #17.
#
#   deploy/build-llama-server.sh               build it (or reuse the cached build); print its path
#   deploy/build-llama-server.sh --print-path  where the binary is, or would be; nothing built
#
# Why from the llama-cpp-python source package rather than a llama.cpp checkout or release:
# the peer must run the very llama.cpp commit that our Python bindings run, so the sources
# come from the sdist of the version pinned in pyproject.toml (it vendors llama.cpp, server
# included, with the submodule's git metadata, so `llama-server --version` names the commit).
#
# Why the flags come from build-llama.sh: a peer compiled with other kernels would measure
# the compiler, not the server. The same no-AMX CFLAGS/CXXFLAGS, the same GGML_NATIVE
# (left at its default, as build-llama.sh leaves it), the same compiler, and the build is
# keyed by `build-llama.sh --print-key` with this build's CMake arguments added, so the
# binary is rebuilt exactly when a wheel would be.
#
# Environment: CMAKE_ARGS (appended to the CMake arguments, and part of the key), CFLAGS,
# CXXFLAGS and CC (through build-llama.sh), CMAKE_BUILD_PARALLEL_LEVEL (default 2),
# ASSISTANT_LLAMA_SERVER_CACHE (default ~/.cache/assistant), ASSISTANT_LLAMA_SDIST (a
# llama_cpp_python-<version>.tar.gz already on disk, to build without the package index).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
CACHE_ROOT=${ASSISTANT_LLAMA_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/assistant}

# - Release, static: the binary must outlive its build folder, which is deleted; with shared
#   libraries it would point at libllama.so in that folder.
# - Tools on (the server is one of them); tests, examples and the unified `llama` app off.
# - No web UI: the sdist carries the UI's sources but not its built assets (tools/ui/dist),
#   and by default the build would fetch them from a Hugging Face bucket, or run npm; a
#   benchmark peer needs neither, and the build must not reach the network. With both off
#   the server is compiled with an empty asset table (and is run with --no-webui anyway).
# - No OpenSSL: in this llama.cpp LLAMA_CURL is deprecated and ignored; model downloads go
#   through cpp-httplib, whose HTTPS needs OpenSSL. The peer only loads local GGUF files.
SERVER_CMAKE_ARGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF
    -DLLAMA_BUILD_COMMON=ON
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF
    -DLLAMA_OPENSSL=OFF
)

print_path=""
case ${1:-} in
    --print-path) print_path=1 ;;
    "") ;;
    *) echo "usage: build-llama-server.sh [--print-path]" >&2; exit 2 ;;
esac

version=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' "$REPO_DIR/pyproject.toml")
[[ -n $version ]] || { echo "error: no llama-cpp-python pin in pyproject.toml" >&2; exit 1; }

# build-llama.sh hashes its own base arguments, the arguments given here and $CMAKE_ARGS
# together with the flags, the compiler and the CPU features.
key=$("$SCRIPT_DIR/build-llama.sh" --print-key "${SERVER_CMAKE_ARGS[@]}")
flags_line=$("$SCRIPT_DIR/build-llama.sh" --print-flags)
if [[ ! $flags_line =~ CFLAGS=\"([^\"]*)\"\ CXXFLAGS=\"([^\"]*)\" ]]; then
    echo "error: cannot read the flags from build-llama.sh --print-flags: $flags_line" >&2
    exit 1
fi
cflags=${BASH_REMATCH[1]}
cxxflags=${BASH_REMATCH[2]}

out_dir="$CACHE_ROOT/llama-server-$version-$key"
binary="$out_dir/llama-server"
if [[ -n $print_path ]]; then
    echo "$binary"
    exit 0
fi
if [[ -x $binary ]]; then
    echo "llama-server (llama-cpp-python $version): up to date (build $key)" >&2
    echo "$binary"
    exit 0
fi

# Only the user's CMAKE_ARGS are added, after ours so that they win; build-llama.sh's own base
# arguments are not: they turn the tools, the server among them, off.
read -ra user_cmake_args <<<"${CMAKE_ARGS:-}"
jobs=${CMAKE_BUILD_PARALLEL_LEVEL:-2}

mkdir -p "$CACHE_ROOT"
tmp_dir=$(mktemp -d "$CACHE_ROOT/.tmp-llama-server.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT

if [[ -n ${ASSISTANT_LLAMA_SDIST:-} ]]; then
    sdist=$ASSISTANT_LLAMA_SDIST
else
    # The venv's pip if there is one (it is the one configured for the package index).
    python=python3
    [[ -x $REPO_DIR/.venv/bin/python ]] && python=$REPO_DIR/.venv/bin/python
    "$python" -m pip download --quiet --no-deps --no-binary :all: \
        "llama-cpp-python==$version" -d "$tmp_dir/download"
    sdist=$(compgen -G "$tmp_dir/download/llama_cpp_python-$version.tar.gz" || true)
fi
[[ -f $sdist ]] || { echo "error: no llama-cpp-python $version source package (${sdist:-none})" >&2; exit 1; }
mkdir "$tmp_dir/src"
tar -xzf "$sdist" -C "$tmp_dir/src" --strip-components=1
llama_dir="$tmp_dir/src/vendor/llama.cpp"
if [[ ! -f $llama_dir/tools/server/CMakeLists.txt || ! -f $llama_dir/tools/server/server.cpp ]]; then
    echo "error: the llama-cpp-python $version source package does not carry llama.cpp's server" \
        "sources (vendor/llama.cpp/tools/server); llama-server cannot be built from it" >&2
    exit 1
fi

echo "llama-server (llama-cpp-python $version): compiling with $jobs jobs (build $key)" >&2
echo "  cmake ${SERVER_CMAKE_ARGS[*]}${user_cmake_args[*]:+ ${user_cmake_args[*]}}" >&2
echo "  CFLAGS=\"$cflags\" CXXFLAGS=\"$cxxflags\"" >&2
# The build info (commit, build number) comes from git. The sdist carries the submodule's git
# metadata; the ceiling stops git from finding, instead, a repository around the cache folder.
# Build output goes to stderr so that stdout is only the binary's path.
export GIT_CEILING_DIRECTORIES=$tmp_dir
CFLAGS="$cflags" CXXFLAGS="$cxxflags" \
    cmake -S "$llama_dir" -B "$tmp_dir/build" "${SERVER_CMAKE_ARGS[@]}" "${user_cmake_args[@]}" >&2
cmake --build "$tmp_dir/build" --target llama-server --parallel "$jobs" >&2
"$tmp_dir/build/bin/llama-server" --version >&2  # it starts: fail here rather than in a benchmark

mkdir "$tmp_dir/out"
cp "$tmp_dir/build/bin/llama-server" "$tmp_dir/out/"
chmod 755 "$tmp_dir/out"
rm -rf "$out_dir"
mv "$tmp_dir/out" "$out_dir"  # a complete folder or none
echo "llama-server (llama-cpp-python $version): built (build $key)" >&2
echo "$binary"
