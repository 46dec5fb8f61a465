"""GPU checks (skipped without CUDA): trials train on the device, several per GPU."""

from __future__ import annotations

import pytest

from sweeper.cli import main
from sweeper.data import load_splits
from sweeper.spec import spec_from_dict
from sweeper.store import Study
from sweeper.trial import resolve_trial
from sweeper.trial.loop import TrialContext, train_trial

pytestmark = pytest.mark.gpu


def test_trial_trains_on_cuda(data_root):
    spec = spec_from_dict(
        {"name": "g", "model": {"name": "lenet5_v4"},
         "data": {"train_size": 2000, "val_size": 500, "test_size": 500},
         "train": {"epochs": 2, "batch_size": 64, "device": "cuda"}},
        "test",
    )  # fmt: skip
    final = train_trial(
        resolve_trial(spec, {}), TrialContext(load_splits(spec.data, data_root), lambda m, s: None)
    )
    assert final["val_acc"] > 0.5 and final["epoch"] == 2


@pytest.mark.slow
def test_fractional_gpus_pack_trials(tmp_path, ray_session, data_root):
    sweep = tmp_path / "g.yaml"
    sweep.write_text(
        """
name: gpu_pack
method: grid
parameters: {width: {values: [16, 32, 64, 128]}}
model: {name: mlp}
data: {name: fashion_mnist, train_size: 2000, val_size: 500, test_size: 500}
train: {epochs: 1}
resources: {cpus: 0.5, gpus: 0.25}
"""
    )
    assert main(["run", str(sweep), "--out", str(tmp_path)]) == 0
    df = Study.open("gpu_pack", tmp_path).trials()
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"}
