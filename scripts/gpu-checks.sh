#!/usr/bin/env bash
# The GPU checks of issue 9, as one script for a lent GPU machine (H100/H200): the GPU tests,
# then the benchmarks. Figures go to $OUT (or ./gpu-out) for benchmarks/RESULTS.md.
#
# On the device machine (see ../shared/STACK-NOTES.md): a first call carries `.gpu` (made by
# ../shared/tools/gpu-bundle) and runs `source .gpu/activate`; the next call, at once, carries
# the Fashion-MNIST folder as data/ and runs this script:
#     SWEEPER_DATA_DIR=$PWD/data PYTHONPATH=/tmp/site:$PWD/src:$PWD bash scripts/gpu-checks.sh
# SWEEPER_GPU_QUICK=1 runs the tests and a 1-epoch grid only (a rerun that must be short).
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
export WANDB_MODE=offline WANDB_SILENT=true RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
py="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch, ray, optuna; print(torch.__version__, ray.__version__, optuna.__version__)" \
  | tee -a "$out/gpu.txt"

# 1. tests that need CUDA, then the CPU-equivalence tests of the step and the fused runs
timeout 240 "$py" -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tail -30 | tee "$out/gpu-tests.txt"
timeout 120 "$py" -m pytest -q -x tests/test_step.py tests/test_fused.py 2>&1 | tail -5 \
  | tee -a "$out/gpu-tests.txt"

# 2. the train step: eager vs static vs CUDA graph on the seed's MLP sizes
timeout 120 "$py" benchmarks/step_speed.py --repeats 3 2>&1 | tee "$out/step_speed.txt"

# 3. the whole seed grid (96 configs x 100 epochs) with sweeper's defaults, against the
#    seed-style loop on 4 configs scaled per trial-epoch (the full seed side takes ~3.7 h)
if [[ "${SWEEPER_GPU_QUICK:-0}" == 1 ]]; then
  grid=(--epochs 1 --seed-configs 4 --ways seed,sweeper)
else
  grid=(--seed-configs 4 --ways seed,sweeper)
fi
timeout 420 "$py" benchmarks/sweep_throughput.py "${grid[@]}" 2>&1 | tee "$out/sweep_grid.txt"
# 4. all four ways on a subset: plain Ray Tune (one GPU per trial) and the bare loop
timeout 300 "$py" benchmarks/sweep_throughput.py --configs 8 --epochs 5 2>&1 \
  | tee "$out/sweep_subset.txt"
