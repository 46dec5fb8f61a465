"""The same configs trained four ways, each in a fresh interpreter, timed from start to exit.

* ``seed``: the seed notebooks' loop: a torchvision Dataset with ToTensor + Normalize, a
  DataLoader, one trial after another (on CUDA when there is one; batches moved per step).
* ``ray``: plain Ray Tune (default settings) running that same trainer, one trial per GPU,
  or per CPU without one, reporting each epoch.
* ``sweeper``: ``sweeper run`` on a sweep file of exactly these configs, with its defaults
  (W&B offline, the study folder, checkpoints, the Optuna mirror, resources as in the file;
  ``resources.executor: auto``). ``sweeper-host`` and ``sweeper-process`` set the executor:
  one host per GPU (or per few cores) training many trials in one process, or a process per
  trial (``engine/executor.py``).
* ``bare``: a plain torch for-loop doing sweeper's training (data resident on the device,
  batches by index, the same model and optimizer), one trial after another, no orchestration:
  the baseline for start-up costs.

The seed-style and bare loops run with ``--threads`` torch threads (default 1: what each of
sweeper's and Ray's trials gets with one CPU per trial; on a shared 2-core VM torch's own
default of 2 threads took 15 to 178 s for what 1 thread does in 9 to 11 s).

Every way trains the first ``--configs`` configs of the sweep file's grid (the product of
its parameters' values in file order, the last one varying fastest) for ``--epochs`` epochs,
validates every epoch, tests after the last, and the best config is the one with the best
final ``val_acc``. ``--seed-configs K`` trains the seed-style way on the first K configs only
and scales its wall time per trial-epoch (the table says so). Prints one Markdown table and
the machine; paste both into benchmarks/RESULTS.md.

    python benchmarks/sweep_throughput.py --configs 8 --epochs 8 --train-size 10000
    python benchmarks/sweep_throughput.py --seed-configs 4 --ways seed,ray,sweeper,bare  # GPU
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

WAYS = ("seed", "ray", "sweeper", "sweeper-host", "sweeper-process", "bare")
LABELS = {
    "seed": "seed-style loop (DataLoader)",
    "ray": "plain Ray Tune + seed trainer",
    "sweeper": "sweeper run (defaults)",
    "sweeper-host": "sweeper run, executor host",
    "sweeper-process": "sweeper run, executor process",
    "bare": "bare torch loop (resident data)",
}


# -- the configs -----------------------------------------------------------------------------
def grid_configs(sweep: str | Path) -> list[dict[str, Any]]:
    """Every config of the sweep file's grid, in product order (file order, last fastest)."""
    from sweeper.search.space import grid
    from sweeper.spec import load_spec

    cells = grid(load_spec(sweep))
    return [dict(zip(cells, values, strict=True)) for values in itertools.product(*cells.values())]


def subset_sweep(
    sweep: str | Path, configs: list[dict[str, Any]], epochs: int, train_size: int | None, out: Path
) -> Path:
    """A sweep file for ``configs``: the source file with a grid of just these values.

    The grid is the product of the values the configs use; when that holds more cells than
    ``configs`` (a count that is not a sub-grid), ``run_cap`` cuts it and Optuna's grid
    sampler picks which cells run (:func:`sweeper_exact` tells).
    """
    import yaml

    raw = yaml.safe_load(Path(sweep).read_text())
    raw["name"] = "bench"
    raw["method"] = "grid"
    raw.pop("sampler", None)
    raw["parameters"] = {
        key: {"values": list(dict.fromkeys(c[key] for c in configs))} for key in configs[0]
    }
    raw.setdefault("train", {})["epochs"] = epochs
    if train_size:
        raw.setdefault("data", {})["train_size"] = train_size
    if not sweeper_exact(configs):
        raw["run_cap"] = len(configs)
    path = out / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def sweeper_exact(configs: list[dict[str, Any]]) -> bool:
    """Whether ``configs`` is a whole sub-grid (sweeper then runs exactly these)."""
    sizes = [len({c[k] for c in configs}) for k in configs[0]]
    return len(configs) == len({tuple(c.values()) for c in configs}) == _prod(sizes)


def _prod(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def sweeper_results(out: Path) -> list[dict]:
    from sweeper.store import PARAM_PREFIX, Study

    rows = Study.open("bench", out).trials().to_dict(orient="records")
    return [
        {
            "params": {
                k[len(PARAM_PREFIX) :]: v for k, v in r.items() if k.startswith(PARAM_PREFIX)
            },
            "val_acc": r.get("val_acc"),
            "test_acc": r.get("test_acc"),
        }
        for r in rows
        if r.get("state") == "COMPLETE"
    ]


# -- the parent: one subprocess per way, the table ------------------------------------------
def timed(way: str, job: dict[str, Any], work: Path) -> tuple[float, list[dict]]:
    """Run one way in a fresh interpreter; wall seconds from its start to its exit."""
    job_file, result_file = work / f"{way}.job.json", work / f"{way}.result.json"
    job_file.write_text(json.dumps(job))
    cmd = [sys.executable, __file__, "--child", way, str(job_file), str(result_file)]
    if way.startswith("sweeper"):  # the command line itself
        cmd = [sys.executable, "-m", "sweeper.cli", "run", job["sweeper_file"], "--out", job["out"]]
        cmd += ["--force-new", *(["--data-dir", job["data_dir"]] if job["data_dir"] else [])]
        if "-" in way:
            cmd += ["--set", f"resources.executor={way.split('-', 1)[1]}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{way} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    if way.startswith("sweeper"):
        return wall, sweeper_results(Path(job["out"]))
    return wall, json.loads(result_file.read_text())


def best(results: list[dict]) -> tuple[float | None, float | None]:
    ok = [r for r in results if r.get("val_acc") is not None]
    if not ok:
        return None, None
    top = max(ok, key=lambda r: r["val_acc"])
    return top["val_acc"], top.get("test_acc")


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if "model name" in ln]
        device = f"CPU only ({names[0] if names else 'unknown'})"
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "ray", "optuna", "wandb"))
    return f"{device}; {os.cpu_count()} cores; Python {sys.version.split()[0]}; {versions}"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="sweeps/mlp_grid.yaml")
    ap.add_argument("--configs", type=int, help="the first N configs of the grid (default all)")
    ap.add_argument("--epochs", type=int, help="epochs per config (default the file's)")
    ap.add_argument("--train-size", type=int, help="training images (default the file's)")
    ap.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated: {','.join(WAYS)}")
    ap.add_argument("--seed-configs", type=int, help="seed-style way on the first K only, scaled")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each way (median wall)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, seed and bare ways")
    ap.add_argument("--data-dir", default=os.environ.get("SWEEPER_DATA_DIR"))
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sweeper.spec import load_spec

    ways = [w for w in args.ways.split(",") if w]
    if unknown := set(ways) - set(WAYS):
        raise SystemExit(f"--ways: unknown {sorted(unknown)}; expected some of {', '.join(WAYS)}")
    configs = grid_configs(args.sweep)[: args.configs]
    epochs = args.epochs or load_spec(args.sweep).train.epochs
    work = Path(tempfile.mkdtemp(prefix="sweep-throughput-"))
    base = {
        "sweep": str(Path(args.sweep).resolve()),
        "epochs": epochs,
        "train_size": args.train_size,
        "threads": args.threads,
        "data_dir": args.data_dir,
        "out": str(work / "runs"),
        "sweeper_file": str(subset_sweep(args.sweep, configs, epochs, args.train_size, work)),
    }
    load = os.getloadavg()[0]
    print(f"{len(configs)} configs x {epochs} epochs: first {configs[0]}, last {configs[-1]}")
    rows = {}
    for way in ways:
        n = min(args.seed_configs or len(configs), len(configs)) if way == "seed" else len(configs)
        job = {**base, "configs": configs[:n]}
        walls, results = [], []
        for _ in range(args.repeats):
            wall, results = timed(way, job, work)
            walls.append(wall)
        wall = statistics.median(walls)
        rows[way] = {"n": n, "wall": wall, "walls": walls, "scale": len(configs) / n}
        rows[way]["best"] = best(results)
        print(f"  {way}: {', '.join(f'{w:.1f}' for w in walls)} s", flush=True)
    print_table(rows, len(configs), epochs, sweeper_exact(configs))
    print(
        f"\nmachine: {machine()}; {args.threads} torch thread(s) per seed-style/bare trial; "
        f"load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    )
    return 0


def print_table(rows: dict, n_configs: int, epochs: int, exact: bool) -> None:
    seed = rows.get("seed")
    seed_wall = seed["wall"] * seed["scale"] if seed else None
    bare_wall = rows["bare"]["wall"] if "bare" in rows else None
    print(
        "\n| way | configs | epochs | wall s | trial-epochs/s | x seed-style | / bare "
        "| best val acc | its test acc |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for way, r in rows.items():
        scaled = way == "seed" and r["scale"] != 1
        wall = r["wall"] * r["scale"] if way == "seed" else r["wall"]
        shown = (
            f"{wall:.1f} (scaled from {r['n']} configs: {r['wall']:.1f})"
            if scaled
            else f"{wall:.1f}"
        )
        rate = n_configs * epochs / wall
        vs_seed = f"{seed_wall / wall:.1f}x" if seed_wall else "-"
        vs_bare = f"{wall / bare_wall:.2f}x" if bare_wall else "-"
        val, test = r["best"]
        acc = f"{val:.4f} | {test:.4f}" if val is not None and test is not None else "- | -"
        note = (
            "" if not way.startswith("sweeper") or exact else " (grid sampler's pick of the cells)"
        )
        print(
            f"| {LABELS[way]}{note} | {r['n']} | {epochs} | {shown} | {rate:.2f} | {vs_seed} "
            f"| {vs_bare} | {acc} |"
        )
    if seed and seed["scale"] != 1:
        print(
            f"\nseed-style: measured on the first {seed['n']} of the {n_configs} configs; its wall "
            f"time (start-up included) is scaled by {seed['scale']:g} per trial-epoch, its "
            f"accuracies are the best of those {seed['n']}."
        )


def child(way: str, job_file: str, result_file: str) -> int:
    from throughput_ways import run_way

    results = run_way(way, json.loads(Path(job_file).read_text()))
    Path(result_file).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(*sys.argv[2:5]))
    sys.exit(main())
