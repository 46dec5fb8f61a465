"""torchvision's datasets by name, each on a tiny fixture in its own on-disk layout.

The fixtures (``tests/support/tv_fixtures.py``) are written where torchvision's classes
look for them; sweeper's registry loads them through those classes (no download: the files
are there), and one epoch of a small model trains on each.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from sweeper.data import DataError, dataset_info, list_datasets, load_splits
from sweeper.data.torchvision_sets import TORCHVISION_SETS
from sweeper.spec import DataSpec, spec_from_dict
from sweeper.trial import resolve_trial
from sweeper.trial.loop import TrialContext, train_trial
from tests.support import tv_fixtures as fx

GREY, COLOUR = (1, 28, 28), (3, 32, 32)
# name -> (write the fixture, data.args, in_shape, classes, train+val images in the fixture)
CASES = {
    "mnist": (lambda r: fx.write_mnist(r), {}, GREY, 10, 60),
    "kmnist": (lambda r: fx.write_mnist(r, "KMNIST", gz=True), {}, GREY, 10, 60),
    "emnist": (lambda r: fx.write_emnist(r, sub="gzip", gz=True), {}, GREY, 47, 60),
    "emnist-letters": (
        lambda r: fx.write_emnist(r, "letters", 27),
        {"split": "letters"},
        GREY,
        27,
        60,
    ),  # fmt: skip
    "cifar10": (lambda r: fx.write_cifar(r), {}, COLOUR, 10, 60),
    "cifar100": (lambda r: fx.write_cifar(r, hundred=True), {}, COLOUR, 100, 60),
    "svhn": (lambda r: fx.write_svhn(r), {}, COLOUR, 10, 60),
}


def test_every_torchvision_set_is_registered_and_tested():
    names = {row.info.name for row in TORCHVISION_SETS}
    assert names <= set(list_datasets())
    assert names == {case.partition("-")[0] for case in CASES}


@pytest.mark.parametrize("case", list(CASES))
def test_loads_through_the_registry_and_trains_one_epoch(tmp_path, case):
    write, args, shape, classes, n = CASES[case]
    write(tmp_path)
    name = case.partition("-")[0]
    data = DataSpec(name=name, args=args, val_size=12, test_size=10)
    assert dataset_info(data).in_shape == shape and dataset_info(data).num_classes == classes
    splits = load_splits(data, tmp_path)
    assert splits.sizes() == {"train": n - 12, "val": 12, "test": 10}
    assert splits.info.num_classes == classes
    for x, y in ((splits.x_train, splits.y_train), (splits.x_test, splits.y_test)):
        assert x.dtype == np.uint8 and x.shape[1:] == shape
        assert y.dtype == np.int64 and 0 <= y.min() and y.max() < classes
    # the fixture's labels are i % classes (SVHN writes 1..10 and torchvision maps 10 to 0)
    assert len(np.unique(np.concatenate([splits.y_train, splits.y_val]))) == min(classes, n)

    spec = spec_from_dict(
        {"name": "t", "model": {"name": "mlp", "args": {"depth": 1, "width": 8}},
         "data": data.model_dump(by_alias=True), "train": {"epochs": 1, "batch_size": 16}},
        "test",
    )  # fmt: skip
    reports = []
    ctx = TrialContext(splits, lambda m, s: reports.append(copy.deepcopy(m)), None)
    final = train_trial(resolve_trial(spec, {}), ctx)
    assert len(reports) == 1 and np.isfinite(final["train_loss"])
    assert 0 <= final["val_acc"] <= 1


def test_emnist_split_is_checked(tmp_path):
    with pytest.raises(DataError, match="args.split: expected one of byclass, .*got 'bal'"):
        dataset_info(DataSpec(name="emnist", args={"split": "bal"}))
    with pytest.raises(DataError, match="args.size: mnist takes no arguments; got 'size'"):
        dataset_info(DataSpec(name="mnist", args={"size": 3}))


def test_missing_files_without_a_network_are_one_line_naming_the_folder(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tvu, "urlopen", offline, raising=False)
    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DataError, match=f"cifar10 not found under {tmp_path}/cifar-10-batches-py"):
        load_splits(DataSpec(name="cifar10", val_size=5), tmp_path)


def test_a_bad_split_in_a_sweep_file_names_its_key(tmp_path, capsys):
    from sweeper.cli import main

    sweep = tmp_path / "s.yaml"
    sweep.write_text("model: {name: mlp}\ndata: {name: emnist, args: {split: bal}}\n")
    assert main(["check", str(sweep)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("s.yaml: data.args.split: expected one of byclass, bymerge, balanced, "
                        "letters, digits, mnist, got 'bal'")  # fmt: skip
