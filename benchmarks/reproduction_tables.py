"""Print the tables of docs/reproductions.md from the studies of reproduce_seeds.sh.

Usage: .venv/bin/python benchmarks/reproduction_tables.py [OUT_DIR]   (default runs/reproductions)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from sweeper.search.space import constants
from sweeper.store import Study


def table(name: str, root: Path) -> pd.DataFrame | None:
    path = root / name
    if not (path / "study.json").exists():
        print(f"\n({name}: not run)")
        return None
    study = Study(path)
    df = study.trials()
    for key, value in constants(study.spec()).items():  # studies made before constants had columns
        if f"config/{key}" not in df.columns:
            df[f"config/{key}"] = value
    return df


def pct(x: float) -> str:
    return "" if pd.isna(x) else f"{100 * x:.1f}%"


def epochs_to(study: Path, trial_id: str, key: str = "val_acc", level: float = 0.85) -> str:
    hist = Study(study).history()
    h = hist[(hist["trial_id"] == trial_id) & (hist[key] >= level)]
    return str(int(h["epoch"].min())) if len(h) else "not reached"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/reproductions")
    if (df := table("lenet_variants", root)) is not None:
        print("\n| model | params | best val_acc | final val_acc | test_acc | wall (s) |")
        print("|---|---:|---:|---:|---:|---:|")
        for _, r in df.sort_values("config/model").iterrows():
            print(
                f"| {r['config/model']} | {int(r['params']):,} | {pct(r['best_val_acc'])} | "
                f"{pct(r['val_acc'])} | {pct(r['test_acc'])} | {r['wall_s']:.0f} |"
            )
    if (df := table("fashion_lr", root)) is not None:
        print(
            "\n| lr | val_acc (10 ep) | test_acc | epoch val_acc >= 85% | grad_mean (100 steps) | state |"
        )
        print("|---:|---:|---:|---:|---:|---|")
        for _, r in df.sort_values("config/lr", ascending=False).iterrows():
            state = "diverged" if r.get("diverged") == 1 else r["state"]
            print(
                f"| {r['config/lr']:g} | {pct(r['val_acc'])} | {pct(r['test_acc'])} | "
                f"{epochs_to(root / 'fashion_lr', r['trial_id'])} | {r.get('grad_mean', float('nan')):.4g} | {state} |"
            )
    if (df := table("depth_width", root)) is not None:
        print("\n| model | params | val_acc | test_acc | wall (s) |")
        print("|---|---:|---:|---:|---:|")
        for _, r in df.sort_values("config/model").iterrows():
            print(
                f"| {r['config/model']} | {int(r['params']):,} | {pct(r['val_acc'])} | {pct(r['test_acc'])} | {r['wall_s']:.0f} |"
            )
    for name in ("xor_depth_width", "xor_depth_width_300ep"):
        if (df := table(name, root)) is not None:
            print(f"\n{name}\n\n| depth | width | test_acc mean | std | per repeat |")
            print("|---:|---:|---:|---:|---|")
            for _, r in df.sort_values(["config/depth", "config/width"]).iterrows():
                reps = ", ".join(f"{r[f'test_acc_r{i}']:.3f}" for i in range(3))
                print(
                    f"| {r['config/depth']} | {r['config/width']} | {r['test_acc']:.3f} | {r['test_acc_std']:.3f} | {reps} |"
                )
    for name in ("mlp_grid_10ep", "mlp_grid_seed_choice"):
        if (df := table(name, root)) is not None:
            print(f"\n{name}: best 5 by val_acc\n")
            print("| depth | width | batch | optimizer | val_acc | test_acc | epochs |")
            print("|---:|---:|---:|---|---:|---:|---:|")
            for _, r in df.sort_values("val_acc", ascending=False).head(5).iterrows():
                print(
                    f"| {r['config/depth']} | {r['config/width']} | {r['config/batch_size']} | "
                    f"{r['config/optimizer']} | {pct(r['val_acc'])} | {pct(r['test_acc'])} | {r['epochs']} |"
                )
            adam = df[df["config/optimizer"] == "adam"].sort_values("val_acc", ascending=False)
            if len(adam):
                r = adam.iloc[0]
                print(
                    f"\nbest Adam config: depth {r['config/depth']}, width {r['config/width']}, "
                    f"batch {r['config/batch_size']}: test_acc {pct(r['test_acc'])}"
                )
    if (df := table("unet_membrane", root)) is not None:
        print(
            "\n| batch | lr | epochs | optimizer | val_iou | val_dice | test_iou | test_dice | wall (s) |"
        )
        print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for _, r in df.sort_values("val_iou", ascending=False).iterrows():
            print(
                f"| {r['config/batch_size']} | {r['config/lr']:.3f} | {r['config/epochs']} | {r['config/optimizer']} | "
                f"{r.get('val_iou', float('nan')):.3f} | {r.get('val_dice', float('nan')):.3f} | "
                f"{r.get('test_iou', float('nan')):.3f} | {r.get('test_dice', float('nan')):.3f} | {r['wall_s']:.0f} |"
            )


if __name__ == "__main__":
    main()
