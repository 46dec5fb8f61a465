#!/usr/bin/env bash
# The GPU checks, for a lent GPU machine (an H200): two steps, two device calls back to back.
#
#   scripts/gpu-checks.sh prepare   # here: builds .gpu/ (the package bundle, ~55 MiB) and
#                                   # .gpu-data/ (Fashion-MNIST raw + membrane, ~37 MiB)
#   scripts/gpu-checks.sh tests     # device call 1, carry [".gpu"]: unpacks the bundle,
#                                   # installs the project, runs every GPU test (< 3 min)
#   scripts/gpu-checks.sh bench     # device call 2 at once (the machine still warm, so the
#                                   # unpacked bundle is still there), carry [".gpu-data"]
#
# Step 2 runs, each under its own timeout and in this order: the mission's command
# `sweeper run sweeps/mlp_grid.yaml` with its defaults (gpus: auto); the throughput benchmark
# (4 configs x 3 epochs, every way); the LeNet and U-Net (512 px) seed sweeps for a few
# epochs. It ends within SWEEPER_GPU_BUDGET_S (default 530 s) and writes as it goes, so a run
# cut short still leaves its figures in $OUT: bench.log (everything), a status JSON per study,
# and studies.tar.gz (the study folders without checkpoints). Figures go to
# benchmarks/RESULTS.md with the GPU, the torch version and the command.
set -uo pipefail
step=${1:-}
out="${OUT:-gpu-out}"
py="${PYTHON:-python3}"
export WANDB_MODE=offline WANDB_SILENT=true RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
# sweeper makes its own per-study token; this one is for the benchmark's plain-Ray way
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"

die() { echo "gpu-checks: $*" >&2; exit 2; }

prepare() {
  [[ -d ../shared/data/FashionMNIST/raw ]] || die "expected ../shared/data/FashionMNIST/raw beside the project"
  [[ -f .gpu/activate ]] || ../shared/tools/gpu-bundle || die "../shared/tools/gpu-bundle failed"
  rm -rf .gpu-data && mkdir -p .gpu-data/FashionMNIST
  cp -r ../shared/data/FashionMNIST/raw .gpu-data/FashionMNIST/ && cp -r ../shared/data/membrane .gpu-data/
  du -sh .gpu .gpu-data
}

activate() {  # the bundle (call 1 carries it; call 2 finds it unpacked in /tmp/site)
  if [[ -f .gpu/activate ]]; then
    # shellcheck disable=SC1091
    source .gpu/activate
  elif [[ -f /tmp/site/.done ]]; then
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
  else
    die "no .gpu/ here and no bundle unpacked in /tmp/site: run step 'tests' first, carrying .gpu"
  fi
  "$py" -m pip install -q --no-deps --no-build-isolation -e . >"$out/install.txt" 2>&1 \
    || { cat "$out/install.txt"; die "pip install -e . failed"; }
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$py" -c "import torch, ray, optuna; print('torch', torch.__version__, 'ray', ray.__version__, 'optuna', optuna.__version__)"
  } 2>&1 | tee "$out/gpu.txt"
}

tests() {
  activate
  timeout 200 "$py" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py tests/test_host.py \
    tests/test_host_fusion.py 2>&1 | tee "$out/tests.txt"
  timeout 60 "$py" -m pytest -q -p no:cacheprovider tests/test_step.py tests/test_placement.py \
    -m "not slow" 2>&1 | tail -5 | tee -a "$out/tests.txt"
}

# --- step 2 -------------------------------------------------------------------------------------
budget=${SWEEPER_GPU_BUDGET_S:-530}
runs=/tmp/gpu-runs
log() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$out/bench.log"; }

left() {  # seconds for the next part: at most $1, and never past the budget
  local rest=$((budget - SECONDS - 15))
  ((rest < $1)) && echo $((rest > 0 ? rest : 1)) || echo "$1"
}

keep() {  # the study's status and folder (no checkpoints) into $OUT, now
  local name=$1
  timeout 30 sweeper status "$name" --runs "$runs" --json >"$out/status-$name.json" 2>>"$out/bench.log"
  tar -C "$runs" --exclude='checkpoint*' --exclude='*.pkl' -czf "$out/studies.tar.gz" . 2>/dev/null
}

sweep() {  # sweep NAME MAX_SECONDS sweeper-run-args...
  local name=$1 limit; limit=$(left "$2"); shift 2
  log "sweeper run $* (timeout ${limit}s)"
  local t0=$SECONDS
  timeout -s INT -k 20 "$limit" sweeper run "$@" --runs "$runs" 2>&1 | tee -a "$out/bench.log"
  log "-> exit ${PIPESTATUS[0]} after $((SECONDS - t0))s"
  keep "$name"
}

bench() {
  activate
  [[ -d .gpu-data/FashionMNIST/raw ]] || die "expected .gpu-data/FashionMNIST/raw: carry .gpu-data"
  export SWEEPER_DATA_DIR=$PWD/.gpu-data
  rm -rf "$runs" && mkdir -p "$runs"
  sweep mlp_grid 200 sweeps/mlp_grid.yaml  # defaults: executor auto, the host on a GPU
  # the same grid a process per trial, side by side (cut by its timeout: trial-epochs/s)
  sweep mlp_grid_process 90 sweeps/mlp_grid.yaml --name mlp_grid_process \
    --set resources.executor=process
  local limit; limit=$(left 150)
  log "benchmarks/sweep_throughput.py --configs 4 --epochs 3 (timeout ${limit}s)"
  timeout -k 10 "$limit" "$py" benchmarks/sweep_throughput.py --configs 4 --epochs 3 2>&1 \
    | tee -a "$out/bench.log"
  sweep lenet_variants 50 sweeps/lenet_variants.yaml --set train.epochs=2
  sweep unet_membrane 60 sweeps/unet_membrane.yaml --max-trials 2 --set 'parameters.epochs={value: 3}'
  log "done"
}

case "$step" in
  prepare) prepare ;;
  tests) mkdir -p "$out" && tests ;;
  bench) mkdir -p "$out" && bench ;;
  *) die "usage: scripts/gpu-checks.sh prepare|tests|bench (got '${step}')" ;;
esac
