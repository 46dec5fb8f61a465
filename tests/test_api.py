"""The Python API: ``sweeper.run`` on a dict spec, the Study's tables, report, export,
``open_study`` and ``resume``, with real Ray Tune, Optuna and W&B offline on xor."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

import sweeper
from sweeper.cli import main
from tests.support import REPO

XOR = {
    "name": "api_xor",
    "method": "grid",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {"width": {"values": [4, 8]}, "lr": {"values": [0.05, 0.2]}},
    "model": {"name": "xor_mlp", "args": {"depth": 1}},
    "data": {"name": "xor"},
    "train": {"epochs": 2, "batch_size": 250, "optimizer": "sgd"},
    "resources": {"cpus": 1},
}


def test_import_sweeper_stays_cheap():
    code = (
        "import sys, sweeper; sweeper.run, sweeper.open_study, sweeper.Study; "
        "print([m for m in ('torch', 'ray', 'pandas', 'wandb') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr


def test_bad_input_is_the_cli_line(tmp_path, capsys):
    bad = {**XOR, "model": {"name": "xor_mlpp"}}
    with pytest.raises(sweeper.SpecError) as api_err:
        sweeper.check(bad)
    (tmp_path / "bad.yaml").write_text(json.dumps(bad))  # JSON is YAML
    assert main(["check", str(tmp_path / "bad.yaml")]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("sweeper: error: ")
    assert str(api_err.value).startswith("<spec>: model.name: ")
    assert cli_line == str(api_err.value).replace("<spec>", str(tmp_path / "bad.yaml"))

    with pytest.raises(sweeper.SweeperError, match="overrides: expected a mapping"):
        sweeper.run(XOR, overrides="train.epochs=1")
    with pytest.raises(sweeper.SweeperError, match="spec: expected a sweep file's path"):
        sweeper.run(42)  # type: ignore[arg-type]
    with pytest.raises(sweeper.SweeperError, match="no study here"):
        sweeper.open_study(tmp_path / "nothing")
    with pytest.raises(sweeper.SpecError, match=r"--set train\.epochs"):
        sweeper.check(XOR, overrides={"train.epochs": 0})
    plan = sweeper.check(XOR, overrides={"train.epochs": 1}, max_trials=3)
    assert (plan.n_trials, plan.space_size, plan.spec.train.epochs) == (3, 4, 1)


def test_an_existing_study_is_named_in_the_apis_words_not_the_clis(tmp_path, capsys):
    from sweeper.api._launch import prepare
    from sweeper.store import Study

    out = tmp_path / "runs"
    Study.create(out / "api_xor", prepare(XOR).plan.spec, "<spec>", 4)
    with pytest.raises(sweeper.SweeperError) as api_err:
        sweeper.run(XOR, out=out)
    message = str(api_err.value)
    assert "force_new=True" in message and "--force-new" not in message
    assert f"sweeper.open_study({str(out / 'api_xor')!r}).resume()" in message
    (tmp_path / "x.yaml").write_text(json.dumps(XOR))
    assert main(["run", str(tmp_path / "x.yaml"), "--out", str(out)]) == 2
    assert "--force-new" in capsys.readouterr().err


@pytest.mark.slow
def test_run_a_dict_spec_end_to_end(tmp_path, ray_session, capsys):
    out = tmp_path / "runs"
    study = sweeper.run(XOR, out=out, overrides={"train.epochs": 2})
    assert isinstance(study, sweeper.Study) and study.state == "finished"
    assert study.path == out / "api_xor" and study.spec.name == "api_xor"
    assert not study.last_run.interrupted and study.last_run.finished == 4

    table = study.trials()
    assert len(table) == 4 and set(table["state"]) == {"COMPLETE"}
    assert sorted(zip(table["width"], table["lr"], strict=True)) == [
        (4, 0.05), (4, 0.2), (8, 0.05), (8, 0.2)
    ]  # fmt: skip
    assert table["val_acc"].is_monotonic_decreasing  # best first, as `sweeper status`
    capsys.readouterr()
    assert main(["status", "api_xor", "--out", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [t["trial_id"] for t in status["trials"]] == list(table["trial_id"])

    hist = study.history()
    assert sorted(hist.groupby("trial_id")["epoch"].max()) == [2, 2, 2, 2]
    best = study.best(2)
    assert list(best["trial_id"]) == list(table["trial_id"][:2])
    assert best["val_acc"].iloc[0] == table["val_acc"].max()
    with pytest.raises(sweeper.SweeperError, match="k must be an integer >= 1"):
        study.best(0)

    [page] = study.report(tmp_path / "r.html")
    assert page == tmp_path / "r.html" and "plotly" in page.read_text()
    [md] = study.report(tmp_path / "r.md")
    assert md.read_text().startswith("# sweeper report: api_xor")
    report = study.report()
    assert report.figures and "parallel" in {s.key for s in report.sections}
    assert 'class="sweeper-report"' in report._repr_html_()
    assert "api_xor" in study._repr_html_()

    [item] = study.export(1)
    assert item.rank == 1 and item.trial_id == best["trial_id"].iloc[0]
    assert item.sweep.is_file() and item.sweep.parent.parent == study.path / "export"

    again = sweeper.open_study("api_xor", out=out)
    assert again.trials().equals(table) and again.state == "finished"
    assert sweeper.open_study(study.path).name == "api_xor"

    # TensorBoard's own reader: one folder per trial, its epochs and its hparams
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = sorted((study.path / "tensorboard").iterdir())
    assert [f.name for f in folders] == sorted(table["trial_id"])
    for folder in folders:
        acc = EventAccumulator(str(folder))
        acc.Reload()
        assert [e.step for e in acc.Scalars("val_acc")] == [1, 2]
        assert {"_hparams_/session_start_info", "_hparams_/experiment"} <= set(
            acc.PluginTagToContent("hparams")
        )

    with pytest.raises(sweeper.SweeperError, match="already exists"):
        sweeper.run(XOR, out=out)


@pytest.mark.slow
def test_resume_an_interrupted_study_from_a_thread(tmp_path, ray_session, capsys):
    """An interrupted study resumes through the API, here on a thread that is not the main
    one (where signal handlers cannot be set, as in some notebook front ends)."""
    from sweeper.api._launch import prepare
    from sweeper.store import Study

    prepared = prepare({**XOR, "name": "api_resume", "tensorboard": False}, max_trials=2)
    path = tmp_path / "runs" / "api_resume"
    Study.create(path, prepared.plan.spec, "<spec>", 2).set_state("interrupted")
    study = sweeper.open_study(path)
    assert study.state == "interrupted"

    errors: list[BaseException] = []

    def resume() -> None:
        try:
            study.resume()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=resume)
    thread.start()
    thread.join(timeout=300)
    assert not errors and not thread.is_alive()
    assert study.state == "finished" and len(study.trials()) == 2
    assert not (path / "tensorboard").exists()  # tensorboard: false
    capsys.readouterr()
    assert study.resume() is study
    assert "nothing to resume" in capsys.readouterr().out
