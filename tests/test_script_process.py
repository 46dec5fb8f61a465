"""A script trial's process group, its metric lines and the hook, without Ray (fast)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from sweeper.engine.script_trainable import DONE_KEY, ScriptFailed, follow
from sweeper.script.launch import ENV_METRICS, ENV_WATCH_PID, HOOK_DIR, Launch
from sweeper.script.process import ScriptProcess
from tests.support.drivers import alive


def gone_soon(pids: list[int], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(map(alive, pids))


def launch(tmp_path: Path, code: str, **env: str) -> Launch:
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent(code))
    return Launch(
        argv=[sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(HOOK_DIR), **env},
        metrics=tmp_path / "metrics.jsonl",
        stdout=tmp_path / "stdout.log",
        stderr=tmp_path / "stderr.log",
    )


CHILD_AND_IGNORE_TERM = """
import json, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a script that will not stop politely
child = subprocess.Popen(["sleep", "60"])
print(json.dumps([child.pid]), flush=True)
time.sleep(60)
"""


def test_stop_kills_the_group_after_the_grace_period(tmp_path):
    proc = ScriptProcess(launch(tmp_path, CHILD_AND_IGNORE_TERM))
    deadline = time.monotonic() + 10
    while not (tmp_path / "stdout.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = json.loads((tmp_path / "stdout.log").read_text())[0]
    t0 = time.monotonic()
    proc.stop(grace_s=0.5)
    assert 0.4 < time.monotonic() - t0 < 3
    assert gone_soon([proc.pid, child])


def test_the_hook_stops_a_script_whose_worker_died(tmp_path):
    """The Ray worker's stand-in starts the script, then dies: the script stops itself."""
    script = launch(tmp_path, CHILD_AND_IGNORE_TERM)
    parent = textwrap.dedent(f"""
        import os, subprocess, sys, time
        env = dict({dict(script.env)!r}, {ENV_METRICS}={str(tmp_path / "m.jsonl")!r},
                   {ENV_WATCH_PID}=str(os.getpid()), SWEEPER_STOP_GRACE_S="0.5")
        p = subprocess.Popen({script.argv!r}, env=env, start_new_session=True,
                             stdout=open({str(tmp_path / "out")!r}, "w"),
                             stderr=subprocess.DEVNULL)
        print(p.pid, flush=True)
        while not open({str(tmp_path / "out")!r}).read():  # the script has started its child
            time.sleep(0.02)
    """)
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=20)
    pid = int(out.stdout)
    child = json.loads((tmp_path / "out").read_text())[0]
    assert gone_soon([pid, child], seconds=10), "the orphaned script kept running"


LOGS = """
import sys, time, wandb
run = wandb.init(mode="offline", dir=sys.argv[1] if len(sys.argv) > 1 else ".")
for i in range(3):
    wandb.log({"loss": 1.0 / (i + 1), "text": "x"})
    wandb.log({"acc": 0.1 * (i + 1), "val": {"top5": 1.0, "img": wandb.Html("<p>")}})
run.finish()
"""


def test_follow_reports_each_metric_line_then_the_exit(tmp_path):
    reported: list[dict] = []
    env = {ENV_METRICS: str(tmp_path / "metrics.jsonl"), "WANDB_DIR": str(tmp_path)}
    count = follow(launch(tmp_path, LOGS, **env), "acc", reported.append, 1.0)
    assert count == 3
    assert [r["acc"] for r in reported] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert [r["epoch"] for r in reported] == [1, 2, 3, 3]
    assert [r["step"] for r in reported] == [1, 3, 5, 5]  # W&B's own steps
    assert all("loss" not in r and "text" not in r for r in reported)
    assert all(r["val.top5"] == 1.0 and "val.img" not in r for r in reported)  # W&B's name
    assert DONE_KEY not in reported[-2] and reported[-1][DONE_KEY] == 0


def test_follow_fails_a_crash_with_its_stderr(tmp_path):
    code = "import sys\nprint('first line', file=sys.stderr)\nraise SystemExit('it broke')\n"
    with pytest.raises(ScriptFailed, match=r"s\.py exited with code 1: first line \| it broke"):
        follow(launch(tmp_path, code), "acc", lambda r: None, 1.0)


def _hook_module(monkeypatch) -> types.ModuleType:
    monkeypatch.delenv(ENV_METRICS, raising=False)  # loading it installs nothing
    spec = importlib.util.spec_from_file_location("_hook", HOOK_DIR / "sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hook_refuses_an_untested_wandb(monkeypatch, tmp_path):
    hook = _hook_module(monkeypatch)
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(__version__="0.40.1"))
    fake = types.ModuleType("wandb.sdk.wandb_run")
    fake.Run = type("Run", (), {"log": lambda self, data: None})
    with pytest.raises(ImportError, match="tested with wandb 0.31.x; this script imports"):
        hook._wrap_log(fake, hook._Writer(str(tmp_path / "m.jsonl")))


def test_the_hook_runs_the_sitecustomize_it_shadows(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['SHADOWED_RAN'] = '1'\n")
    env = {
        **os.environ,
        "PYTHONPATH": f"{HOOK_DIR}:{other}",
        ENV_METRICS: str(tmp_path / "m.jsonl"),
    }
    code = "import os, sitecustomize; print(os.environ.get('SHADOWED_RAN'), sitecustomize.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    ran, loaded = out.stdout.split()
    assert ran == "1" and Path(loaded).parent == HOOK_DIR
