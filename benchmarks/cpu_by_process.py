"""CPU seconds by process of one command: where a sweep's CPU goes (driver, Ray, workers, W&B).

Runs the command, samples its process tree every ``--every`` seconds (psutil), and prints a
Markdown table of CPU seconds (user + system) grouped by role: the driver (the command's own
process), Ray's core processes (GCS, raylet, dashboard and its agents, monitors), Ray's
workers by what they ran last (``ray::HostActor``, ``ray::ImplicitFunc`` for a Tune trial,
``ray::IDLE``), W&B's service, and anything else. A process that ends between two samples
counts what the last sample saw (at most ``--every`` seconds of its CPU are missed).

On 2 cores the sum bounds the wall time from below (sum / 2): the figure to read when a
sweep's wall time is compared with a bare loop's.

    python benchmarks/cpu_by_process.py -- sweeper run sweep.yaml --force-new
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict

import psutil

CORE = ("gcs_server", "raylet", "dashboard", "agent", "monitor", "log_monitor", "runtime_env")


def role(cmdline: list[str], root: bool) -> str:
    """The table row a process belongs to (from its command line or Ray's process title)."""
    if root:
        return "driver"
    text = " ".join(cmdline)
    if text.startswith("ray::"):
        return text.split()[0]
    if "wandb" in text:
        return "W&B service"
    if any(part in text for part in CORE):
        return "Ray core (" + next(p for p in CORE if p in text) + ")"
    if "default_worker.py" in text:
        return "ray worker (never ran a task)"
    return "other: " + (cmdline[0].rsplit("/", 1)[-1] if cmdline else "?")


def sample(root: psutil.Process, seen: dict[int, tuple[str, float]]) -> None:
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu = t.user + t.system
                name = role(p.cmdline(), p.pid == root.pid)
        except psutil.Error:
            continue
        old = seen.get(p.pid)
        # a worker's title changes as it takes actors: keep the most specific one seen
        if old is not None and name.startswith("ray worker") and old[0].startswith("ray::"):
            name = old[0]
        if old is not None and name == "ray::IDLE" and old[0].startswith("ray::"):
            name = old[0]
        seen[p.pid] = (name, cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=float, default=0.1, help="seconds between samples")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("expected a command after --")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    seen: dict[int, tuple[str, float]] = {}
    while proc.poll() is None:
        sample(root, seen)
        time.sleep(args.every)
    wall = time.perf_counter() - t0
    rows: dict[str, list[float]] = defaultdict(list)
    for name, cpu in seen.values():
        rows[name].append(cpu)
    print(f"command: {' '.join(cmd)} (exit {proc.returncode})\n")
    print("| process | count | CPU s |\n|---|---:|---:|")
    for name, cpus in sorted(rows.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {name} | {len(cpus)} | {sum(cpus):.1f} |")
    total = sum(sum(c) for c in rows.values())
    print(f"| **total** | {sum(len(c) for c in rows.values())} | **{total:.1f}** |")
    ncpu = psutil.cpu_count() or 1
    print(f"\nwall {wall:.1f} s; CPU / {ncpu} cores = {total / ncpu:.1f} s (the floor)")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
