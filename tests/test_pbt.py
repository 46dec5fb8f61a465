"""PBT and PB2 on xor with real Ray Tune and Optuna: a trial that cannot learn copies a top
trial's checkpoint, continues from it with its new config, and its lineage is recorded."""

from __future__ import annotations

import pytest

from sweeper.engine.population import bounds, mutations
from sweeper.spec import spec_from_dict
from tests.test_schedulers_more import BAD, GOOD, run_sweep, xor_sweep

EPOCHS = 6


def test_mutations_come_from_the_spec_parameters():
    from ray import tune

    spec = spec_from_dict(
        {
            "name": "m",
            "method": "random",
            "parameters": {
                "lr": {"min": 1e-4, "max": 1e-1, "distribution": "log_uniform_values"},
                "width": {"values": [8, 16]},
                "depth": {"min": 1, "max": 3},
                "seed": {"value": 3},
            },
        },
        "m.yaml",
    )
    found = mutations(spec)
    assert set(found) == {"lr", "width", "depth"} and found["width"] == [8, 16]
    assert isinstance(found["lr"], tune.search.sample.Float) and found["lr"].lower == 1e-4
    assert isinstance(found["depth"], tune.search.sample.Integer) and found["depth"].upper == 4
    assert bounds(spec) == {"lr": [1e-4, 1e-1], "depth": [1.0, 3.0]}


def pbt_sweep(name: str, scheduler: dict, parameters: dict | None = None) -> dict:
    config = xor_sweep(name, [GOOD, GOOD * 0.8, BAD, BAD * 2], EPOCHS, scheduler=scheduler)
    if parameters is not None:
        config["parameters"] = parameters
    config["resources"] = {"cpus": 0.5, "max_concurrent": 4}
    return config


def check_lineage(study, df) -> None:
    """Some trial copied another at an epoch and then continued from the copy's state."""
    assert set(df["state"]) == {"COMPLETE"} and (df["epochs"] == EPOCHS).all()
    copies = df[df["pbt_source"].notna() & (df["pbt_source"] != "")]
    assert len(copies) >= 1, df
    hist = study.history()
    ids = set(df["trial_id"])
    for row in copies.itertuples():
        assert row.pbt_source in ids and row.pbt_source != row.trial_id
        at = int(row.pbt_epoch)
        assert 1 <= at < EPOCHS
        own = hist[hist["trial_id"] == row.trial_id].sort_values("epoch")
        assert list(own["epoch"]) == list(range(1, EPOCHS + 1))  # each epoch once
        src = hist[(hist["trial_id"] == row.pbt_source) & (hist["epoch"] == at)]
        after = own[own["epoch"] == at + 1]["val_acc"].iloc[0]
        # the copy's next epoch starts from the source's state (xor: at least as good)
        assert after >= float(src["val_acc"].iloc[0]) - 0.1, (row, own, src)


@pytest.mark.slow
def test_pbt_copies_a_top_trial_and_records_its_lineage(tmp_path, ray_session):
    scheduler = {"name": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5,
                 "synch": True}  # fmt: skip
    study, df = run_sweep(tmp_path, pbt_sweep("pbt", scheduler))
    check_lineage(study, df)
    hist = study.history()
    for row in df[df["pbt_source"].notna()].itertuples():
        changes = row.pbt_changes if isinstance(row.pbt_changes, str) else ""
        if not changes.startswith("lr: "):
            continue  # PBT may keep a categorical's value: nothing changed
        new_lr = float(changes.split("-> ")[-1])
        own = hist[(hist["trial_id"] == row.trial_id) & (hist["epoch"] == row.pbt_epoch + 1)]
        assert own["lr"].iloc[0] == pytest.approx(new_lr)  # the optimizer took the new lr


@pytest.mark.slow
def test_pb2_copies_a_top_trial_and_records_its_lineage(tmp_path, ray_session):
    pytest.importorskip("GPy")
    pytest.importorskip("sklearn")
    params = {"lr": {"min": 1e-7, "max": 0.05, "distribution": "log_uniform_values"}}
    scheduler = {"name": "pb2", "perturbation_interval": 2, "quantile_fraction": 0.5,
                 "synch": True}  # fmt: skip
    config = pbt_sweep("pb2", scheduler, params)
    config["method"] = "random"
    config["run_cap"] = 4
    config["train"]["seed"] = 1
    study, df = run_sweep(tmp_path, config)
    check_lineage(study, df)
