"""End to end on one real study (Ray Tune + Optuna, tiny Fashion-MNIST): W&B runs read back,
the Optuna mirror, report, export and a retrain of the exported config, sync, no secrets."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
import yaml

from sweeper.cli import main
from sweeper.sinks.wandb import run_id
from sweeper.sinks.wandb.offline import offline_runs
from sweeper.store import Study
from tests.support import write_sweep

pytestmark = pytest.mark.slow

SECRET = "sweeper-e2e-secret-" + "7" * 21  # a W&B-key-shaped marker that must not leak


@pytest.fixture(scope="module")
def study(tmp_path_factory, _shared_ray, data_root) -> Study:
    _shared_ray.ready()  # the ray_session fixture, for a module
    root = tmp_path_factory.mktemp("results")
    sweep = write_sweep(
        root, "e2e_results", epochs=2, wandb={"mode": "offline", "tags": ["e2e", "grid"]}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_API_KEY", SECRET)
        assert main(["run", str(sweep), "--out", str(root / "runs")]) == 0
    return Study.open("e2e_results", root / "runs")


def test_each_trial_is_one_wandb_run_with_config_history_and_summary(study):
    df = study.trials().set_index("trial_id")
    hist = study.history()
    runs = offline_runs(study.path / "wandb")
    assert set(runs) == {run_id("e2e_results", t) for t in df.index}
    for trial_id, row in df.iterrows():
        run = runs[run_id("e2e_results", trial_id)]
        assert (run.group, run.job_type, run.tags) == ("e2e_results", "mlp", ["e2e", "grid"])
        assert run.config["width"] == row["config/width"]  # top-level scalars
        assert run.config["optimizer"] == row["config/optimizer"]
        assert run.config["lr"] == (0.05 if row["config/optimizer"] == "sgd" else 0.001)
        assert run.config["depth"] == 1 and run.config["epochs"] == 2
        curve = hist[hist["trial_id"] == trial_id].sort_values("epoch")
        assert run.steps() == [1, 2]
        for step, (_, epoch) in zip(run.history, curve.iterrows(), strict=True):
            assert step["val_acc"] == pytest.approx(epoch["val_acc"])
            assert step["train_loss"] == pytest.approx(epoch["train_loss"])
        summary = run.summary
        assert summary["state"] == "COMPLETE" and summary["epochs"] == 2
        for key in ("val_acc", "best_val_acc", "test_acc", "params"):
            assert summary[key] == pytest.approx(row[key])
        assert run.exit_code == 0


def test_the_optuna_study_matches_the_trial_table(study):
    df = study.trials().set_index("trial_id")
    ot = optuna.load_study(study_name="e2e_results", storage=study.optuna_url)
    assert len(ot.trials) == len(df) == 4
    for trial in ot.trials:
        row = df.loc[trial.user_attrs["trial_id"]]
        assert trial.params == {"width": row["config/width"], "optimizer": row["config/optimizer"]}
        assert trial.state.name == row["state"] == "COMPLETE"
        assert trial.value == pytest.approx(row["val_acc"])
        assert trial.intermediate_values[2] == pytest.approx(row["val_acc"])
    assert ot.best_value == pytest.approx(df["val_acc"].max())


def test_report_in_every_format(study, tmp_path, capsys):
    for fmt, out in (("html", "r.html"), ("md", "r.md"), ("csv", "csv")):
        args = ["report", "e2e_results", "--out", str(study.path.parent), "--format", fmt]
        assert main([*args, "-o", str(tmp_path / out)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = (tmp_path / "r.html").read_text()
    assert (
        page.count('class="fig"') == 6
    )  # parallel, importance, heatmap, curves, params, threshold
    md = (tmp_path / "r.md").read_text()
    assert "### val_acc by width × optimizer" in md and "Every trial trained to the end." in md
    best = (tmp_path / "csv" / "best_trials.csv").read_text().splitlines()
    assert len(best) == 5 and best[0].startswith("rank,trial_id,val_acc")


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")  # TorchScript is deprecated
def test_export_retrains_to_the_same_metric(study, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", str(study.path), "--top", "2", "-o", str(out)]) == 0
    df = study.trials().sort_values("val_acc", ascending=False)
    best = df.iloc[0]
    folder = out / f"top1_{best['trial_id']}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "metrics.json", "model.torchscript.pt", "state_dict.pt", "sweep.yaml",
    ]  # fmt: skip
    assert (out / f"top2_{df.iloc[1]['trial_id']}" / "sweep.yaml").is_file()
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert sweep["parameters"] == {
        "width": {"value": int(best["config/width"])},
        "optimizer": {"value": best["config/optimizer"]},
    }
    assert "root" not in sweep["data"] and None not in sweep.values()  # runs elsewhere
    info = json.loads((folder / "metrics.json").read_text())
    assert info["value"] == pytest.approx(best["val_acc"]) and info["trial_id"] == best["trial_id"]

    # The exported weights are the trial's: they score its validation accuracy again.
    assert val_accuracy(torch.jit.load(str(folder / "model.torchscript.pt")), study) == (
        pytest.approx(best["val_acc"], abs=1e-9)
    )

    # Retraining the exported file gives the same metric (CPU training is deterministic).
    runs = tmp_path / "runs"
    sweep_file = str(folder / "sweep.yaml")
    assert main(["run", sweep_file, "--out", str(runs), "--wandb", "disabled"]) == 0
    again = Study.open("e2e_results_top1", runs)
    (value,) = again.trials()["val_acc"]
    assert value == pytest.approx(best["val_acc"], abs=2e-3)
    assert not (again.path / "wandb").exists()  # --wandb disabled


def val_accuracy(model, study) -> float:
    from sweeper.data import load_splits
    from sweeper.trial.loop import DeviceData

    spec = study.spec()
    data = DeviceData(load_splits(spec.data, spec.data.root), torch.device("cpu"))
    x, y = data.val
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_sync_lists_the_offline_runs_and_needs_a_key(study, tmp_path, monkeypatch, capfd):
    assert main(["sync", str(study.path), "--dry-run"]) == 0
    cap = capfd.readouterr()
    listed = cap.out + cap.err
    assert listed.count(".wandb") >= 4 or listed.count("offline-run-") >= 4, listed
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert main(["sync", str(study.path)]) == 2
    err = capfd.readouterr().err
    assert "sweeper: error: wandb sync failed" in err and "wandb login" in err


def test_no_secret_is_written_into_the_study_or_its_report(study, tmp_path):
    main(["report", str(study.path)])  # into the study folder: report.html
    leaks = [
        str(p.relative_to(study.path))
        for p in study.path.rglob("*")
        if p.is_file() and SECRET.encode() in p.read_bytes()
    ]
    assert leaks == []
    assert (study.path / "report.html").is_file()
