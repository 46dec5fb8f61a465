#!/usr/bin/env bash
# Re-run the seed experiments with the sweep files in sweeps/, as far as a CPU affords.
# Results feed docs/reproductions.md. Usage: benchmarks/reproduce_seeds.sh [OUT_DIR]
# (SWEEPER_DATA_DIR must point at the data; each study lands in OUT_DIR/<name>/.)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/reproductions}
SW=".venv/bin/sweeper"
run() { echo "== $*"; /usr/bin/time -f "wall %e s" "$SW" run "$@" --out "$OUT" --force-new; }

run sweeps/xor_depth_width.yaml
run sweeps/xor_depth_width.yaml --name xor_depth_width_300ep --set train.epochs=300
run sweeps/fashion_lr.yaml
run sweeps/lenet_variants.yaml
run sweeps/depth_width.yaml
# The 96-config grid at 10 epochs (100 on a GPU), then the seed's chosen Adam config at 100.
run sweeps/mlp_grid.yaml --name mlp_grid_10ep --set train.epochs=10
run sweeps/mlp_grid.yaml --name mlp_grid_seed_choice \
    --set 'parameters={depth: {value: 5}, width: {value: 128}, batch_size: {value: 1024}, optimizer: {values: [adam, sgd]}}'
# Then print the tables: .venv/bin/python benchmarks/reproduction_tables.py "$OUT"
# U-Net on 128x128 slices and shorter schedules (the seed's 50/100/150 epochs need a GPU).
run sweeps/unet_membrane.yaml --set data.image_size=128 --set 'parameters.epochs={values: [10, 20, 30]}'
