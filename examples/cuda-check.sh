#!/usr/bin/env bash
# The GPU checks of Graft in one go, for a machine with an NVIDIA GPU, its driver, CUDA 12 and
# cuDNN 9 on the library path, and Maven able to resolve com.microsoft.onnxruntime:onnxruntime_gpu
# (online, or already in ~/.m2): builds with -Pcuda, runs the CUDA tests (the tagged `gpu` test
# fails rather than skips here, since the provider must load), then SpeedBenchmark on CUDA (bare
# ORT forward, Graft forward, training step, ratios, profile and the nodes not placed on CUDA).
# Usage: examples/cuda-check.sh [OUT_DIR]   (from the repository root; logs go to OUT_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-target/cuda-check}}"
mkdir -p "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || { echo "no nvidia-smi: no NVIDIA driver here" | tee -a "$out/nvidia-smi.txt"; exit 2; }
head -15 "$out/nvidia-smi.txt"
# Build the examples and their reactor siblings against onnxruntime_gpu; write the run class path.
./mvnw -q -Pcuda -pl examples -am compile dependency:build-classpath -Dmdep.outputFile="$PWD/$out/classpath.txt" \
  2>&1 | tee "$out/build.log"
# The CUDA tests: R370 message, placement on the CPU, and the GPU placement test (must not skip).
./mvnw -q -Pcuda -pl integration -am test -Dtest='CudaPlacementTest,RuntimeErrorCodesTest' \
  -Dsurefire.failIfNoSpecifiedTests=false 2>&1 | tee "$out/tests.log" || true
grep -h 'testsuite ' integration/target/surefire-reports/TEST-dev.graft.runtime.CudaPlacementTest.xml \
  | grep -o 'tests="[0-9]*" errors="[0-9]*" skipped="[0-9]*" failures="[0-9]*"' | tee "$out/gpu-tests.txt"
grep -q 'skipped="0" failures="0"' "$out/gpu-tests.txt" || echo "CudaPlacementTest skipped or failed: see $out/tests.log"
# The benchmark on CUDA (its profile section lists every node that fell back to the CPU).
java -Xss64m -cp "examples/target/classes:$(cat "$out/classpath.txt")" dev.graft.examples.benchmark.SpeedBenchmark \
  --device cuda --lengths 64,128 --runs 7 --warmup 2 2>&1 | tee "$out/speed-benchmark-cuda.txt"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > "$out/gpu-memory-after.csv" 2>&1 || true
echo "done: logs in $out"
