#!/usr/bin/env bash
# Builds libgraftkernels.so (graftkernels.c) into $1 on Linux x86-64 with the C compiler on PATH
# (cc or gcc). Anywhere else, or without a compiler, it builds nothing and says so: the runtime
# then runs the fused ops' standard-op bodies (dev.graft.runtime.session.FusedKernels logs it).
set -euo pipefail
out="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ "$(uname -s)" != Linux || "$(uname -m)" != x86_64 ]]; then
  echo "[graftkernels] WARNING: not Linux x86-64 ($(uname -s) $(uname -m)): no native kernels built" >&2
  exit 0
fi
compiler="$(command -v cc || command -v gcc || true)"
if [[ -z "$compiler" ]]; then
  echo "[graftkernels] WARNING: no C compiler (cc, gcc) on PATH: no native kernels built" >&2
  exit 0
fi
mkdir -p "$out"
"$compiler" -std=c11 -O3 -fno-trapping-math -fno-math-errno -fopenmp-simd -fPIC -shared -fvisibility=hidden \
  -Wall -Wextra -Werror -o "$out/libgraftkernels.so.tmp" "$here/graftkernels.c" -lpthread -lm
mv "$out/libgraftkernels.so.tmp" "$out/libgraftkernels.so"
echo "[graftkernels] built $out/libgraftkernels.so with $compiler"
