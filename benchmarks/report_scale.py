"""How `sweeper report` and `sweeper status` scale with a study's trial count (no Ray).

Builds synthetic finished studies (a random sweep of 5 parameters, 5 epochs a trial, 92%
complete (2% of all diverged), 5% pruned, 3% failed) the way a run leaves them: the trial table
through the store (``Study.write_trials``), ``history.csv`` in the History's long format,
and ``optuna.db`` through the mirror (its first trial by :class:`OptunaMirror`, the rest
as the same rows in one transaction: 50,000 ``add_trial`` calls would take half an hour).
Each study is built once under ``--cache`` and reused.

Then it times, each in a fresh process: ``sweeper report`` (wall time and peak memory),
the HTML's size, ``sweeper status`` and ``status --json``, and, where Chromium is installed,
headless Chromium opening the page and drawing it (``--screenshot``, wall time).

    .venv/bin/python benchmarks/report_scale.py --sizes 1000,10000,50000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SWEEPER = [sys.executable, "-m", "sweeper.cli"]
EPOCHS = 5
SPEC = {
    "name": "scale",
    "method": "random",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {
        "width": {"values": [32, 64, 128, 256]},
        "depth": {"values": [1, 2, 3]},
        "optimizer": {"values": ["sgd", "adam", "adamw"]},
        "lr": {"min": 1.0e-4, "max": 1.0e-1, "distribution": "log_uniform_values"},
        "dropout": {"min": 0.0, "max": 0.5},
    },
    "model": {"name": "mlp"},
    "train": {"epochs": EPOCHS},
}
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-unsafe-swiftshader", "--hide-scrollbars", "--window-size=1280,2000",
]  # fmt: skip


def build(n: int, root: Path) -> Path:
    """A finished study of ``n`` trials under ``root`` (made once; reused when present)."""
    from sweeper.spec import spec_from_dict
    from sweeper.store import Study

    folder = root / f"scale{n}"
    if (folder / "study.json").is_file() and (folder / "optuna.db").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    spec = spec_from_dict({**json.loads(json.dumps(SPEC)), "name": f"scale{n}", "run_cap": n},
                          "scale.yaml")  # fmt: skip
    study = Study.create(folder, spec, "scale.yaml", n)
    rng = np.random.default_rng(n)
    rows, curves, params = [], [], []
    history = ["trial_id,epoch,key,value\n"]
    for i in range(n):
        p = {
            "width": int(rng.choice([32, 64, 128, 256])),
            "depth": int(rng.integers(1, 4)),
            "optimizer": str(rng.choice(["sgd", "adam", "adamw"])),
            "lr": float(10 ** rng.uniform(-4, -1)),
            "dropout": float(rng.uniform(0, 0.5)),
        }
        u = rng.uniform()
        state, epochs, error = "COMPLETE", EPOCHS, ""
        if u < 0.03:
            state, epochs, error = "FAIL", int(rng.integers(0, 2)), "RuntimeError: out of memory"
        elif u < 0.08:
            state, epochs = "PRUNED", int(rng.integers(1, EPOCHS))
        skill = 0.6 + p["width"] / 2000 - abs(np.log10(p["lr"]) + 2.5) / 20 - p["dropout"] / 10
        tid = f"{i:08x}"
        curve = {}
        for e in range(1, epochs + 1):
            acc = skill * (1 - 0.5**e) + 0.01 * rng.standard_normal()
            for key, v in (("train_loss", 2 - acc * 1.5), ("val_loss", 2.05 - acc * 1.5),
                           ("train_acc", acc + 0.01), ("val_acc", acc)):  # fmt: skip
                history.append(f"{tid},{e},{key},{float(v)!r}\n")
            curve[e] = acc
        row = {"trial_id": tid, "number": i, "state": state, "epochs": epochs,
               "wall_s": round(float(rng.uniform(20, 40)), 2), "startup_s": 1.5, "error": error,
               **{f"config/{k}": v for k, v in p.items()}}  # fmt: skip
        if epochs:
            final = curve[epochs]
            row.update(val_acc=final, best_val_acc=max(curve.values()), test_acc=final - 0.01,
                       val_loss=2.05 - final * 1.5, params=p["width"] * 800 * p["depth"],
                       diverged=int(state == "COMPLETE" and u > 0.98))  # fmt: skip
        rows.append(row)
        curves.append(curve)
        params.append(p)
    study.write_trials(rows)
    (folder / "history.csv").write_text("".join(history), encoding="utf-8")
    _mirror(study, spec, rows, params, curves)
    study.update_meta(data_sizes={"train": 50000, "val": 10000, "test": 10000})
    study.set_state("finished")
    return folder


def _mirror(study, spec, rows, params, curves) -> None:  # noqa: ANN001
    """optuna.db as the mirror writes it: trial 0 by OptunaMirror, the rest copied in bulk."""
    from optuna.distributions import distribution_to_json

    from sweeper.search.space import recorded_distributions
    from sweeper.sinks.mirror import OptunaMirror, _scalars
    from sweeper.states import TrialState

    mirror = OptunaMirror(study.optuna_url, spec, study.path)
    mirror.record(rows[0]["trial_id"], params[0], rows[0], curves[0])
    mirror.close()
    dists = recorded_distributions(spec)
    dist_json = {k: distribution_to_json(d) for k, d in dists.items()}
    objectives = spec.objectives
    db = sqlite3.connect(study.path / "optuna.db")
    (study_id,) = db.execute("SELECT study_id FROM trials WHERE trial_id = 1").fetchone()
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000")
    trials, ps, vals, inter, attrs = [], [], [], [], []
    for i in range(1, len(rows)):
        tid, row = i + 1, rows[i]
        ok = objectives.is_result(row)
        state = TrialState.of(row["state"])
        final = "COMPLETE" if ok else ("PRUNED" if state is TrialState.PRUNED else "FAIL")
        trials.append((tid, i, study_id, final, now, now))
        for k, v in params[i].items():
            ps.append((tid, k, dists[k].to_internal_repr(v), dist_json[k]))
        if ok:
            vals += [(tid, j, v, "FINITE") for j, v in enumerate(objectives.values(row))]
        inter += [(tid, e, v, "FINITE") for e, v in curves[i].items()]
        user = {"trial_id": row["trial_id"], **_scalars(row)}
        attrs += [(tid, k, json.dumps(v)) for k, v in user.items()]
    with db:
        db.executemany("INSERT INTO trials (trial_id, number, study_id, state, datetime_start,"
                       " datetime_complete) VALUES (?,?,?,?,?,?)", trials)  # fmt: skip
        db.executemany("INSERT INTO trial_params (trial_id, param_name, param_value,"
                       " distribution_json) VALUES (?,?,?,?)", ps)  # fmt: skip
        db.executemany("INSERT INTO trial_values (trial_id, objective, value, value_type)"
                       " VALUES (?,?,?,?)", vals)  # fmt: skip
        db.executemany("INSERT INTO trial_intermediate_values (trial_id, step,"
                       " intermediate_value, intermediate_value_type) VALUES (?,?,?,?)", inter)  # fmt: skip
        db.executemany('INSERT INTO trial_user_attributes (trial_id, "key", value_json)'
                       " VALUES (?,?,?)", attrs)  # fmt: skip
    db.close()


def timed(cmd: list[str], **kw) -> tuple[float, float, float]:  # noqa: ANN003
    """Wall seconds, CPU seconds (user + system: what a busy shared machine inflates
    least) and peak RSS (MB) of ``cmd``, run under /usr/bin/time."""
    wrap = ["/usr/bin/time", "-f", "__time %M %U %S"]
    start = time.perf_counter()
    proc = subprocess.run(wrap + cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss, user, system = next(
        ln.split()[1:] for ln in proc.stderr.splitlines() if ln.startswith("__time")
    )
    return wall, float(user) + float(system), int(rss) / 1024


def chromium_seconds(page: Path, work: Path) -> float | None:
    """Headless Chromium: open the page, run its scripts, draw it and save a screenshot."""
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    if exe is None:
        return None
    shot, profile = work / "shot.png", work / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
           page.as_uri()]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, timeout=300, check=True)
    return time.perf_counter() - start


def measure(n: int, cache: Path, browser: bool, src: Path) -> dict:
    start = time.perf_counter()
    folder = build(n, cache)
    built = time.perf_counter() - start
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = cache / f"report{n}.html"
    report = timed([*SWEEPER, "report", str(folder), "-o", str(out)], env=env)
    status = timed([*SWEEPER, "status", str(folder)], env=env)
    as_json = timed([*SWEEPER, "status", str(folder), "--json"], env=env)
    page_s = chromium_seconds(out, cache) if browser else None
    return {"trials": n, "build_s": built, "report": report, "html_mb": out.stat().st_size / 1e6,
            "chromium_s": page_s, "status": status, "json": as_json,
            "load": os.getloadavg()[0]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,50000", help="trial counts, comma-separated")
    ap.add_argument("--cache", default="/tmp/sweeper-report-scale", help="where studies are kept")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium timing")
    ap.add_argument("--src", default=str(ROOT / "src"),
                    help="the sweeper sources to time (e.g. an older commit's, for a baseline)")  # fmt: skip
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    print("| trials | report s (CPU s) | report peak MB | HTML MB | Chromium open+draw s "
          "| status s (CPU s) | status --json s (CPU s) | load avg |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in (int(s) for s in args.sizes.split(",")):
        r = measure(n, cache, not args.no_browser, Path(args.src))
        page = f"{r['chromium_s']:.1f}" if r["chromium_s"] is not None else "-"
        (rw, rc, rm), (sw, sc, sm), (jw, jc, _) = r["report"], r["status"], r["json"]
        print(f"| {n:,} | {rw:.1f} ({rc:.1f}) | {rm:.0f} | {r['html_mb']:.1f} | {page} "
              f"| {sw:.2f} ({sc:.2f}) | {jw:.2f} ({jc:.2f}) | {r['load']:.1f} |", flush=True)  # fmt: skip
        print(f"  (built in {r['build_s']:.1f} s; status peak {sm:.0f} MB)",
              file=sys.stderr, flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
