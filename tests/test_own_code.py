"""The user's own model builder and data loader: from a file, or a module by import.

The fast tests run ``sweeper check`` (a plan: the builder is loaded and built once) on
sweep files in a temporary folder; the slow one sweeps a builder from a file with real Ray
Tune, kills the driver, moves the original file away and resumes, then exports.
"""

from __future__ import annotations

import shutil
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from sweeper.cli import main
from sweeper.data import load_splits
from sweeper.plan import make_plan
from sweeper.spec import load_spec
from sweeper.store import Study
from sweeper.trial import resolve_trial
from sweeper.trial.loop import TrialContext, train_trial
from tests.support import REPO
from tests.support.drivers import Driver, harness_env

BUILDER = '''\
from torch import nn


def build_net(in_shape, num_classes, width: int = 16, depth=1):
    """A small MLP of the user's own."""
    n = 1
    for d in in_shape:
        n *= d
    layers = [nn.Flatten(), nn.Linear(n, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def plain(hidden: int = 4):
    """Takes none of the data's arguments: 2 inputs, 2 classes."""
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2))
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def sweep(folder: Path, model: dict, data: dict | None = None, **extra) -> Path:
    config = {
        "name": "own",
        "model": model,
        "data": data or {"name": "xor"},
        "train": {"epochs": 1, "batch_size": 64},
        "parameters": extra.pop("parameters", {}),
        **extra,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def check(path: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", str(path)])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def one_line_error(path: Path, capsys) -> str:
    code, text = check(path, capsys)
    assert code == 2, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# -- a builder from a file ------------------------------------------------------------------


def test_a_builder_from_a_file_is_planned_with_its_arguments_swept(tmp_path, capsys):
    write(tmp_path, "my_models.py", BUILDER)
    spec_file = sweep(
        tmp_path,
        {"path": "my_models.py", "name": "build_net", "args": {"depth": 2}},
        parameters={"width": {"values": [4, 8]}, "lr": {"values": [0.01]}},
    )
    code, text = check(spec_file, capsys)
    assert code == 0, text
    # xor: 2 inputs, 2 classes; depth 2, width 4 first: 2*4+4 + 4*4+4 + 4*2+2 = 42
    assert "build_net (42 parameters, first config)" in text
    plan = make_plan(load_spec(spec_file), str(spec_file))
    assert plan.spec.model.path == str((tmp_path / "my_models.py").resolve())
    assert plan.space_size == 2


def test_a_builder_without_the_data_arguments_takes_only_its_own(tmp_path, capsys):
    write(tmp_path, "my_models.py", BUILDER)
    spec_file = sweep(tmp_path, {"path": "my_models.py", "name": "plain", "args": {"hidden": 3}})
    code, text = check(spec_file, capsys)
    assert code == 0, text
    assert "plain (17 parameters" in text  # 2*3+3 + 3*2+2


def test_a_builder_by_import(tmp_path, capsys, monkeypatch):
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    write(pkg, "__init__.py", "")
    write(pkg, "nets.py", BUILDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, text = check(sweep(tmp_path, {"import": "userpkg.nets:plain"}), capsys)
    assert code == 0, text
    assert "plain (" in text
    line = one_line_error(sweep(tmp_path, {"import": "nopkg.nets:plain"}), capsys)
    assert "model.import: nopkg.nets:plain: no module named 'nopkg'" in line


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("def build_net(:\n    pass\n", "build_net", r"my_models.py, line 1: import failed: SyntaxError"),
        ("import math\nraise RuntimeError('no GPU here')\n", "build_net",
         r"my_models.py, line 2: import failed: RuntimeError: no GPU here"),
        ("def other():\n    pass\n", "build_net", r"my_models.py: has no function 'build_net'; it defines other"),
        ("def build_net(num_classes):\n    x = 1\n    raise ValueError(f'bad {num_classes}')\n", "build_net",
         r"my_models.py, line 3: build_net raised ValueError: bad 2"),
        ("def build_net(in_shape):\n    return 3\n", "build_net",
         r"my_models.py, line 1: my_models.py:build_net must return a torch.nn.Module, got int"),
    ],
    ids=["syntax-error", "raises-at-import", "missing-name", "builder-raises", "not-a-module"],
)  # fmt: skip
def test_a_bad_builder_is_one_line_naming_the_file_and_line(
    tmp_path, capsys, source, name, expected
):
    write(tmp_path, "my_models.py", source)
    line = one_line_error(sweep(tmp_path, {"path": "my_models.py", "name": name}), capsys)
    assert str(tmp_path / "sweep.yaml") in line
    assert expected in line, line


def test_an_unknown_argument_lists_the_builders_parameters(tmp_path, capsys):
    write(tmp_path, "my_models.py", BUILDER)
    fixed = sweep(tmp_path, {"path": "my_models.py", "name": "build_net", "args": {"widht": 3}})
    line = one_line_error(fixed, capsys)
    assert "model.args.widht: model my_models.py:build_net does not take widht; " in line
    assert "expected some of width, depth; did you mean 'width'?" in line
    swept = sweep(
        tmp_path,
        {"path": "my_models.py", "name": "build_net"},
        parameters={"dropout": {"values": [0.1, 0.2]}},
    )
    line = one_line_error(swept, capsys)
    assert "parameters.dropout: unknown parameter 'dropout'" in line and "(width, depth)" in line


def test_an_annotated_argument_is_checked_before_a_build(tmp_path, capsys):
    write(tmp_path, "my_models.py", BUILDER)
    spec_file = sweep(
        tmp_path,
        {"path": "my_models.py", "name": "build_net"},
        parameters={"width": {"values": [4, "wide"]}},
    )
    line = one_line_error(spec_file, capsys)
    assert "parameters.width.values[1]: expected an integer, got a string 'wide'" in line


def test_a_missing_file_and_a_missing_name(tmp_path, capsys):
    line = one_line_error(sweep(tmp_path, {"path": "nowhere.py", "name": "f"}), capsys)
    assert "model.path: " in line and "nowhere.py: no such file" in line
    line = one_line_error(sweep(tmp_path, {"path": "nowhere.py"}), capsys)
    assert "model.name: missing required key (the builder function in nowhere.py)" in line


# -- data from a file -----------------------------------------------------------------------

DATA = """\
import numpy as np
import torch


def load(n: int = 64, root=None):
    rng = np.random.default_rng(0)

    def split(m):
        x = rng.normal(size=(m, 3)).astype(np.float32)
        return x, (x[:, 0] > 0).astype(np.int64)

    x, y = split(n)  # a negative n: numpy raises at line 9, the last frame in this file
    return {"train": (torch.from_numpy(x), torch.from_numpy(y)), "val": split(16),
            "test": split(16), "num_classes": 2}


def extra_key():
    x = np.zeros((5, 3), np.float32)
    y = np.zeros(5, np.int64)
    return {"train": (x, y), "val": (x, y), "test": (x, y), "classes": 2}


def bad_lengths():
    x = np.zeros((5, 3), np.float32)
    return {"train": (x, np.zeros(4, np.int64)), "val": (x, np.zeros(5, np.int64)),
            "test": (x, np.zeros(5, np.int64))}


def bad_shape():
    x = np.zeros((5, 3), np.float32)
    return {"train": (x, np.zeros(5, np.int64)), "val": (x[:, :2], np.zeros(5, np.int64)),
            "test": (x, np.zeros(5, np.int64))}


def float_labels():
    x = np.zeros((5, 3), np.float32)
    return {"train": (x, np.zeros(5)), "val": (x, np.zeros(5)), "test": (x, np.zeros(5))}


def a_list():
    return [1, 2]


def masks(good: bool = True):
    x = np.zeros((4, 1, 8, 8), np.uint8)
    y = np.ones((4, 1, 8, 8), np.uint8) if good else np.full((4, 8, 8), 2, np.uint8)
    return {"train": (x, y), "val": (x, y), "test": (x, y), "task": "segmentation"}
"""


def test_data_from_a_file_is_loaded_checked_and_trained_on(tmp_path, capsys):
    write(tmp_path, "my_models.py", BUILDER)
    write(tmp_path, "my_data.py", DATA)
    data = {"path": "my_data.py", "name": "load", "args": {"n": 80}, "train_size": 50}
    spec_file = sweep(tmp_path, {"path": "my_models.py", "name": "build_net"}, data)
    code, text = check(spec_file, capsys)
    assert code == 0, text
    assert "build_net (98 parameters" in text  # 3 inputs, 2 classes: 3*16+16 + 16*2+2
    plan = make_plan(load_spec(spec_file), str(spec_file))
    splits = load_splits(plan.spec.data, plan.spec.data.root)
    assert splits.sizes() == {"train": 50, "val": 16, "test": 16}
    assert splits.info.in_shape == (3,) and splits.info.num_classes == 2
    assert splits.x_train.dtype == np.float32 and splits.y_train.dtype == np.int64
    # one epoch of the user's builder on the user's data, as a worker trains it
    reports = []
    ctx = TrialContext(splits, lambda m, s: reports.append(dict(m)), None)
    final = train_trial(resolve_trial(plan.spec, {}), ctx)
    assert len(reports) == 1 and np.isfinite(final["train_loss"]) and 0 <= final["val_acc"] <= 1


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("bad_lengths", {}, "bad_lengths returned train: 5 inputs and 4 labels"),
        ("bad_shape", {}, "bad_shape returned val inputs of shape (2,); train's are (3,)"),
        ("float_labels", {}, "float_labels returned train y of shape (5,), dtype float64; "
                             "expected integer labels (N,)"),
        ("a_list", {}, "a_list returned list; expected a dict with train, val, test"),
        ("masks", {"good": False}, "masks returned train masks of shape (4, 8, 8); expected "
                                   "(N, 1, H, W) = (4, 1, 8, 8)"),
        ("extra_key", {}, "extra_key returned unknown key 'classes'; expected keys train, val"),
        ("load", {"n": -1}, "line 9: load raised ValueError: negative dimensions are not allowed"),
    ],
)  # fmt: skip
def test_bad_data_is_one_line_naming_the_file_and_function(tmp_path, capsys, name, args, expected):
    write(tmp_path, "my_data.py", DATA)
    spec_file = sweep(tmp_path, {"name": "mlp"}, {"path": "my_data.py", "name": name, "args": args})
    line = one_line_error(spec_file, capsys)
    assert f"data.path: {tmp_path / 'my_data.py'}, line " in line and expected in line, line


def test_segmentation_masks_from_a_file(tmp_path):
    write(tmp_path, "my_data.py", DATA)
    unet = {"name": "unet", "args": {"depth": 2}}  # 8x8 images: two halvings
    spec = load_spec(sweep(tmp_path, unet, {"path": "my_data.py", "name": "masks"}))
    plan_spec = make_plan(spec, str(tmp_path / "sweep.yaml")).spec
    splits = load_splits(plan_spec.data, plan_spec.data.root)
    assert splits.info.task == "segmentation" and splits.info.num_classes == 1
    assert splits.info.in_shape == (1, 8, 8) and "val_iou" in splits.info.metrics


def test_an_unknown_data_argument_names_the_functions_own(tmp_path, capsys):
    write(tmp_path, "my_data.py", DATA)
    spec_file = sweep(tmp_path, {"name": "mlp"}, {"path": "my_data.py", "name": "load",
                                                  "args": {"size": 3}})  # fmt: skip
    line = one_line_error(spec_file, capsys)
    assert "data.args.size: my_data.py:load takes n; got 'size'" in line


# -- end to end: swept, killed, resumed with the original moved away, exported ---------------


@pytest.mark.slow
def test_a_builder_from_a_file_sweeps_survives_sigkill_and_exports(tmp_path, data_root):
    user = tmp_path / "user"
    user.mkdir()
    write(user, "my_models.py", BUILDER)
    spec_file = sweep(
        user,
        {"path": "my_models.py", "name": "build_net"},
        {"name": "fashion_mnist", "train_size": 3000, "val_size": 300, "test_size": 300},
        parameters={"width": {"values": [8, 16]}},
        train={"epochs": 4, "batch_size": 32},
        resources={"cpus": 1, "max_concurrent": 1},
    )
    out = tmp_path / "runs"
    ray_tmp = Path(tempfile.mkdtemp(prefix="swo", dir="/tmp"))
    env = harness_env(ray_tmp)
    try:
        d = Driver(["run", str(spec_file), "--out", str(out)], tmp_path / "d.log", env, REPO)
        study = out / "own"
        deadline = time.monotonic() + 180
        while not _some_epoch(study):
            assert d.proc.poll() is None, (tmp_path / "d.log").read_text()
            assert time.monotonic() < deadline, "no epoch reported"
            time.sleep(0.1)
        assert d.kill(), "the driver ended before the kill"
        assert (study / "code" / "my_models.py").read_text() == BUILDER
        assert yaml.safe_load((study / "spec.yaml").read_text())["model"]["path"] == (
            "code/my_models.py"
        )
        # the original goes away (and the study is moved): the study's copy is what loads
        shutil.rmtree(user)
        moved = tmp_path / "moved"
        shutil.move(str(out), str(moved))
        d = Driver(["resume", "own", "--out", str(moved)], tmp_path / "d.log", env, REPO)
        assert d.wait(300) == 0, (tmp_path / "d.log").read_text()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    study = Study(moved / "own")
    df = study.trials()
    assert study.meta()["state"] == "finished"
    assert sorted(df["config/width"]) == [8, 16] and set(df["state"]) == {"COMPLETE"}
    assert (df["epochs"] == 4).all()
    assert main(["export", str(study.path), "--top", "1"]) == 0
    top = next((study.path / "export").glob("top1_*"))
    assert (top / "my_models.py").read_text() == BUILDER  # the exported sweep runs beside it
    assert load_spec(top / "sweep.yaml").model.path == "my_models.py"
    import torch

    scripted = torch.jit.load(str(top / "model.torchscript.pt"))
    assert scripted(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert main(["report", str(study.path)]) == 0


def _some_epoch(study: Path) -> bool:
    try:
        df = Study(study).trials()
    except Exception:  # noqa: BLE001 - not written yet
        return False
    return bool(len(df)) and "epochs" in df and (df["epochs"].fillna(0) >= 1).any()


def test_the_saved_spec_keeps_each_form_and_copies_the_file(tmp_path):
    from sweeper.spec import spec_from_dict
    from sweeper.store import dump_spec
    from sweeper.store.study import copy_code

    write(tmp_path, "my_models.py", BUILDER)
    by_import = spec_from_dict({"name": "a", "model": {"import": "pkg.nets:plain"}}, "x.yaml")
    again = spec_from_dict(yaml.safe_load(dump_spec(by_import)), "spec.yaml")
    assert again.model == by_import.model and again.model.name == "plain"
    assert yaml.safe_load(dump_spec(by_import))["model"]["import"] == "pkg.nets:plain"
    by_path = spec_from_dict(
        {"name": "b", "model": {"path": str(tmp_path / "my_models.py"), "name": "build_net"}}, "x"
    )
    study = tmp_path / "study"
    study.mkdir()
    saved = copy_code(by_path, study)
    assert saved.model.path == "code/my_models.py"
    assert (study / "code" / "my_models.py").read_text() == BUILDER
