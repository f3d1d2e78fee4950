#!/usr/bin/env bash
# setup-cuda.sh [PREFIX]: prepares the CUDA 13.0 build toolchain for `--features cuda` on a
# machine with no system CUDA (no GPU needed), from NVIDIA's PyPI wheels. Idempotent: a second
# run with the toolchain in place only rewrites PREFIX/env.sh.
#
#   scripts/setup-cuda.sh                      # PREFIX defaults to ~/.cache/memreader/cuda13
#   source ~/.cache/memreader/cuda13/env.sh    # CUDA_HOME, PATH (nvcc), CUDA_COMPUTE_CAP=90, ...
#   cargo build --release --features cuda
#
# Exactly 13.0: a newer nvcc emits a PTX ISA that a 580 driver cannot load. The wheels have no
# lib64, no unversioned .so names and no libcuda.so, so PREFIX/cuda is a CUDA_HOME made of links
# plus a link-only libcuda.so stub (soname libcuda.so.1); the driver's real library is used at
# run time. Never put lib64/stubs on a runtime library path.
set -euo pipefail
P=${1:-$HOME/.cache/memreader/cuda13}
VERSION=13.0.2
H="$P/cuda"
mkdir -p "$P"

if [ ! -x "$P/venv/bin/python" ]; then
  python3 -m venv "$P/venv"
fi
if ! "$P/venv/bin/pip" show cuda-toolkit 2>/dev/null | grep -qx "Version: $VERSION" ||
  [ ! -x "$H/bin/nvcc" ]; then
  "$P/venv/bin/pip" install -q --disable-pip-version-check \
    "cuda-toolkit[nvcc,crt,nvvm,cudart,cccl,cublas,curand,nvrtc]==$VERSION"
fi
CU=$("$P/venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')

# CUDA_HOME made of links (rebuilt every run: cheap, and it follows a reinstalled venv).
rm -rf "$H"
mkdir -p "$H/lib64/stubs"
ln -s "$CU/bin" "$H/bin"
ln -s "$CU/include" "$H/include"
ln -s "$CU/nvvm" "$H/nvvm"
for f in "$CU"/lib/*.so*; do ln -s "$f" "$H/lib64/"; done
for l in cublas cublasLt cudart nvrtc; do ln -s "$CU/lib/lib$l.so.13" "$H/lib64/lib$l.so"; done
ln -s "$CU/lib/libcurand.so.10" "$H/lib64/libcurand.so"

# Link-only libcuda stub: one empty function per driver entry point cudarc links against.
CUDARC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | tail -1 || true)
if [ -n "$CUDARC" ]; then
  grep -oE 'pub unsafe fn cu[A-Za-z0-9_]+' "$CUDARC/src/driver/sys/mod.rs" | awk '{print $4}'
else
  grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$CU/include/cuda.h"
fi | sort -u | awk '{print "void " $1 "(void){}"}' >"$H/lib64/stubs/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$H/lib64/stubs/libcuda.so" "$H/lib64/stubs/libcuda_stub.c"

# Link paths go in LIBRARY_PATH, which cargo does not fingerprint (RUSTFLAGS would rebuild all).
cat >"$P/env.sh" <<EOT
# Written by scripts/setup-cuda.sh: the CUDA $VERSION build toolchain for --features cuda.
export CUDA_HOME=$H
export CUDA_PATH=$H
export PATH=$H/bin:\$PATH
export LIBRARY_PATH=$H/lib64:$H/lib64/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export CUDARC_CUDA_VERSION=13000
EOT
"$H/bin/nvcc" --version | tail -1
echo "CUDA $VERSION toolchain ready; now: source $P/env.sh"
