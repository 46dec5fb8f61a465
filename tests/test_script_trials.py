"""Own-script trials end to end: real Ray Tune, real Optuna, real wandb offline.

Each test writes a tiny W&B script (no torch, except the shipped example) and a W&B-format
sweep file into a temporary folder and runs ``sweeper run`` from there, as a user would.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from sweeper.cli import main
from sweeper.sinks.wandb.offline import offline_runs
from sweeper.sinks.wandb.runs import run_id
from sweeper.store import Study
from tests.support import REPO
from tests.support.drivers import alive

pytestmark = pytest.mark.slow

# The script side: a W&B script that reads wandb.config, logs, and records what it saw.
HEADER = """
import json, os, subprocess, sys, time
import wandb
OUT = {out!r}
run = wandb.init()
cfg = run.config.as_dict()
seen = {{"config": cfg, "argv": sys.argv[1:], "pid": os.getpid(), "cwd": os.getcwd(),
        "env": {{k: v for k, v in os.environ.items() if k.startswith("WANDB_")}}}}
with open(os.path.join(OUT, f"seen-{{cfg['tag']}}.json"), "w") as f:
    json.dump(seen, f)
"""


def write(folder: Path, script: str, sweep: str) -> None:
    (folder / "train.py").write_text(HEADER.format(out=str(folder)) + textwrap.dedent(script))
    (folder / "sweep.yaml").write_text(textwrap.dedent(sweep))


def run_here(folder: Path, monkeypatch, *args: str) -> int:
    monkeypatch.chdir(folder)
    return main(["run", "sweep.yaml", "--out", str(folder / "studies"), *args])


def seen(folder: Path, tag: str) -> dict:
    return json.loads((folder / f"seen-{tag}.json").read_text())


def trials(folder: Path, name: str) -> pd.DataFrame:
    return Study.open(name, folder / "studies").trials().set_index("config/tag")


def test_metrics_are_what_the_script_logged_and_config_is_nested(
    tmp_path, ray_session, monkeypatch
):
    write(
        tmp_path,
        """
        for i in range(3):
            wandb.log({"val_acc": cfg["opt"]["lr"] * (i + 1), "loss": 1.0 / (i + 1), "note": "x"})
        run.finish()
        """,
        """
        name: logged
        program: train.py
        method: grid
        metric: {name: val_acc, goal: maximize}
        parameters:
          tag: {values: [a, b]}
          opt:  # W&B's nested parameters
            parameters:
              lr: {values: [0.1]}
              name: {value: adam}
        """,
    )
    assert run_here(tmp_path, monkeypatch) == 0
    study = Study.open("logged", tmp_path / "studies")
    df = trials(tmp_path, "logged")
    assert list(df["state"]) == ["COMPLETE", "COMPLETE"]
    runs = offline_runs(study.path / "wandb")
    # one W&B run per trial, the script's own: the driver opened none of its own
    assert sorted(runs) == sorted(run_id("logged", t) for t in df["trial_id"])
    history = study.history()
    for tag, row in df.iterrows():
        s = seen(tmp_path, str(tag))
        assert s["config"] == {"tag": tag, "opt": {"lr": 0.1, "name": "adam"}}
        assert sorted(s["argv"]) == sorted([f"--tag={tag}", "--opt={'lr': 0.1, 'name': 'adam'}"])
        assert s["env"]["WANDB_RUN_ID"] == run_id("logged", row["trial_id"])
        assert s["env"]["WANDB_DIR"] == str(study.path) and s["env"]["WANDB_SWEEP_ID"] == "logged"
        assert Path(s["cwd"]).parent == study.tune_dir.resolve()
        logged = [h for h in runs[s["env"]["WANDB_RUN_ID"]].history if "val_acc" in h]
        assert [h["val_acc"] for h in logged] == pytest.approx([0.1, 0.2, 0.3])
        mine = history[history["trial_id"] == row["trial_id"]].sort_values("epoch")
        assert list(mine["val_acc"]) == [h["val_acc"] for h in logged]
        assert list(mine["loss"]) == [h["loss"] for h in logged]
        assert row["val_acc"] == logged[-1]["val_acc"] and row["epochs"] == 3


def test_a_crash_fails_the_trial_with_its_stderr_and_the_study_goes_on(
    tmp_path, ray_session, monkeypatch, capfd
):
    write(
        tmp_path,
        """
        if cfg["tag"] == "crash":
            wandb.log({"val_acc": 0.5})
            print("boom: the script fell over", file=sys.stderr)
            sys.exit(3)
        if cfg["tag"] == "silent":
            wandb.log({"loss": 1.0})
            sys.exit(0)
        wandb.log({"val_acc": 0.9})
        """,
        """
        name: faults
        program: train.py
        method: grid
        metric: {name: val_acc}
        parameters:
          tag: {values: [ok, crash, silent]}
        """,
    )
    for handler in logging.getLogger("ray").handlers:  # it holds the stderr Ray was imported
        if _rays_stream_handler(handler):  # with: this test's, as a CLI's
            monkeypatch.setattr(handler, "stream", sys.stderr)
    assert run_here(tmp_path, monkeypatch) == 0  # failed trials do not fail the run
    df = trials(tmp_path, "faults")
    assert df.loc["ok", "state"] == "COMPLETE" and df.loc["ok", "val_acc"] == 0.9
    assert df.loc["crash", "state"] == "FAIL"
    assert "exited with code 3" in df.loc["crash", "error"]
    assert "boom: the script fell over" in df.loc["crash", "error"]
    assert df.loc["silent", "state"] == "FAIL"
    assert "never logged 'val_acc' (logged loss)" in df.loc["silent", "error"]
    # the terminal: one line per failed trial, its traceback in the study folder
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Trials did not complete" not in err, err
    failed = {t: df.loc[t, "trial_id"] for t in ("crash", "silent")}
    for tag, trial_id in failed.items():
        (line,) = [ln for ln in err.splitlines() if ln.startswith(f"trial {trial_id} failed: ")]
        assert df.loc[tag, "error"].split(": ")[-1] in line, line
        log = tmp_path / "studies" / "faults" / "errors" / f"{trial_id}.txt"
        assert line.endswith(f"(full log: {log.relative_to(tmp_path)})"), line
        text = log.read_text()
        assert "\n  File " in text and "\x1b[" not in text


def test_a_pruned_trial_is_stopped_with_its_children(tmp_path, ray_session, monkeypatch):
    write(
        tmp_path,
        """
        child = subprocess.Popen(["sleep", "120"])
        with open(os.path.join(OUT, f"pids-{cfg['tag']}.json"), "w") as f:
            json.dump([os.getpid(), child.pid], f)
        if cfg["tag"] == "bad":
            time.sleep(3)  # the good trial reaches the first rung first
        for i in range(4):
            wandb.log({"val_acc": 0.9 if cfg["tag"] == "good" else 0.1})
            time.sleep(0.2 if cfg["tag"] == "good" else 60)
        """,
        """
        name: pruned
        program: train.py
        method: grid
        metric: {name: val_acc, goal: maximize}
        early_terminate: {type: hyperband, min_iter: 1, max_iter: 4, eta: 2}
        parameters:
          tag: {values: [good, bad]}
        """,
    )
    t0 = time.monotonic()
    assert run_here(tmp_path, monkeypatch) == 0
    assert time.monotonic() - t0 < 50  # the bad trial did not sleep its minute out
    df = trials(tmp_path, "pruned")
    assert df.loc["good", "state"] == "COMPLETE" and df.loc["good", "epochs"] == 4
    assert df.loc["bad", "state"] == "PRUNED" and df.loc["bad", "epochs"] == 1
    pids = json.loads((tmp_path / "pids-bad.json").read_text())
    deadline = time.monotonic() + 5
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "the pruned script or its child survived"


def test_the_example_sweep_runs_unchanged(tmp_path, ray_session, monkeypatch):
    pytest.importorskip("torchvision")
    example = tmp_path / "own_script"
    shutil.copytree(REPO / "examples" / "own_script", example)
    monkeypatch.chdir(example)
    assert main(["run", "sweep.yaml", "--out", str(tmp_path / "studies")]) == 0
    study = Study.open("own_script", tmp_path / "studies")
    df = study.trials()
    assert len(df) == 3 and set(df["state"]) == {"COMPLETE"}
    runs = offline_runs(study.path / "wandb")
    for row in df.to_dict(orient="records"):
        logged = runs[run_id("own_script", row["trial_id"])]
        assert logged.config["lr"] == pytest.approx(row["config/lr"])
        assert logged.config["hidden"] == row["config/hidden"]
        assert [h["val_acc"] for h in logged.history] == [row["val_acc"]]
        assert 0.5 < row["val_acc"] <= 1.0 and row["epochs"] == 1


def test_a_killed_study_resumes_an_interrupted_script_from_scratch(tmp_path):
    """SIGKILL of the driver: the script stops itself; resume reruns it, never a finished one."""
    from tests.support.chaos import _rows
    from tests.support.drivers import Driver, alive, harness_env

    write(
        tmp_path,
        """
        open(os.path.join(OUT, f"start-{cfg['tag']}-{os.getpid()}"), "w").close()
        wandb.log({"val_acc": 0.5})
        if cfg["tag"] == "held":
            with open(os.path.join(OUT, "pid-held"), "w") as f:
                f.write(str(os.getpid()))
            while os.path.exists(os.path.join(OUT, "hold")):
                time.sleep(0.1)
        wandb.log({"val_acc": 0.6})
        """,
        """
        name: killed
        program: train.py
        method: grid
        metric: {name: val_acc}
        parameters:
          tag: {values: [quick, held]}
        """,
    )
    (tmp_path / "hold").touch()
    ray_tmp = Path(tempfile.mkdtemp(prefix="sweeper-ray-"))  # a socket path must be short
    env, studies = harness_env(ray_tmp), tmp_path / "studies"
    study = studies / "killed"
    d = Driver(["run", "sweep.yaml", "--out", str(studies)], tmp_path / "log", env, tmp_path)
    deadline = time.monotonic() + 90
    done = lambda: [r for r in _rows(study) if r.get("state") == "COMPLETE"]  # noqa: E731
    while not (done() and (tmp_path / "pid-held").exists()) and time.monotonic() < deadline:
        assert d.proc.poll() is None, (tmp_path / "log").read_text()
        time.sleep(0.2)
    time.sleep(3)  # Ray snapshots the experiment every 2 s
    held = int((tmp_path / "pid-held").read_text())
    assert d.kill()
    deadline = time.monotonic() + 10
    while alive(held) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(held), "the held script outlived its driver"
    (tmp_path / "hold").unlink()
    r = Driver(["resume", str(study)], tmp_path / "log", env, tmp_path)
    assert r.wait(120) == 0, (tmp_path / "log").read_text()
    df = trials(tmp_path, "killed")
    assert list(df.loc[["quick", "held"], "state"]) == ["COMPLETE", "COMPLETE"]
    starts = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.glob("start-*"))
    assert starts == ["start-held", "start-held", "start-quick"]  # quick never ran again
    history = Study.open("killed", studies).history()
    mine = history[history["trial_id"] == df.loc["held", "trial_id"]].sort_values("epoch")
    assert list(mine["epoch"]) == [1, 2] and list(mine["val_acc"]) == [0.5, 0.6]
    metrics = next(study.glob("tune/*/metrics.jsonl"), None)
    lines = [
        json.loads(x)
        for p in study.glob("tune/*/metrics.jsonl")
        for x in p.read_text().splitlines()
    ]
    assert metrics is not None and len(lines) == 4  # 2 + 2: the killed start's lines are gone
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_json_values_and_dotted_names_reach_the_script_as_from_wandbs_agent(
    tmp_path, ray_session, monkeypatch
):
    """Lists, mappings, null, a Hydra dotted name beside its first part, and nesting: the
    argv, the param file, the JSON file and wandb.config W&B's own agent gives the same
    config; the trial table shows them as JSON and export writes them back."""
    import yaml
    from wandb.sdk.lib import config_util

    from tests.test_script_command import wandb_run

    command = ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}", "${args_json_file}"]
    write(
        tmp_path,
        """
        wandb.log({"val_acc": 0.5 if cfg["tag"] == "a" else 0.7})
        run.finish()
        """,
        f"""
        name: jsonvals
        program: train.py
        command: {json.dumps(command)}
        method: grid
        controller: {{type: local}}
        metric: {{name: val_acc, goal: maximize}}
        parameters:
          tag: {{values: [a, b]}}
          optimizer: {{value: adam}}
          optimizer.config.learning_rate: {{values: [0.01]}}
          opt: {{values: [{{name: sgd, betas: [0.9, 0.99]}}]}}
          sizes: {{values: [[32, 64]]}}
          dropout: {{values: [null]}}
          trainer: {{parameters: {{max_epochs: {{value: 2}}}}}}
        """,
    )
    assert run_here(tmp_path, monkeypatch) == 0
    study = Study.open("jsonvals", tmp_path / "studies")
    df = trials(tmp_path, "jsonvals")
    assert list(df["state"]) == ["COMPLETE", "COMPLETE"]
    assert df["config/sizes"].tolist() == ["[32, 64]"] * 2  # readable, as JSON
    for tag, row in df.iterrows():
        server = {"tag": tag, "optimizer": "adam", "optimizer.config.learning_rate": 0.01,
                  "opt": {"name": "sgd", "betas": [0.9, 0.99]}, "sizes": [32, 64],
                  "dropout": None, "trainer": {"max_epochs": 2}}  # fmt: skip
        theirs = wandb_run(command, server, tmp_path / f"agent-{tag}", monkeypatch)
        s = seen(tmp_path, str(tag))
        ours = (
            study.path
            / "wandb"
            / "sweep-jsonvals"
            / f"config-{run_id('jsonvals', row['trial_id'])}.yaml"
        )
        assert s["argv"][:-1] == theirs["argv"][3:-1]  # the arguments; then the JSON file
        assert s["argv"][-1] == str(ours.with_suffix(".json"))
        agent_file = Path(theirs["env"]["WANDB_SWEEP_PARAM_PATH"])
        assert ours.read_text() == agent_file.read_text()
        assert ours.with_suffix(".json").read_text() == agent_file.with_suffix(".json").read_text()
        assert s["config"] == config_util.dict_from_config_file(str(agent_file))
    assert main(["export", "jsonvals", "--out", str(tmp_path / "studies"), "--top", "1"]) == 0
    (exported,) = (study.path / "export").glob("top1_*/sweep.yaml")
    params = yaml.safe_load(exported.read_text())["parameters"]
    assert params["opt"] == {"value": {"name": "sgd", "betas": [0.9, 0.99]}}
    assert params["dropout"] == {"value": None} and params["sizes"] == {"value": [32, 64]}
    assert params["trainer"] == {"parameters": {"max_epochs": {"value": 2}}}
    assert params["optimizer.config.learning_rate"] == {"value": 0.01}


def _rays_stream_handler(handler: logging.Handler) -> bool:
    """A stream handler of Ray's own (not one of pytest's capture handlers on the logger)."""
    pytest_own = type(handler).__module__.startswith("_pytest")
    return isinstance(handler, logging.StreamHandler) and not pytest_own
