"""The report reads like its sweep: numbers in numeric order, one order for categories,
an overview that says what was swept and what ran, and output that survives ``| head``."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from sweeper.report import _summary as S
from sweeper.report import study_sections
from tests.test_report import SPEC, make_study

GRID = {
    **SPEC,
    "method": "grid",
    "parameters": {
        "width": {"values": [32, 64, 128, 256]},
        "batch_size": {"values": [256, 512, 1024, 2048]},
        "depth": {"values": [1, 2, 10]},
        "optimizer": {"values": ["sgd", "adam"]},  # not in alphabetical order
    },
    "data": {"train_size": 5000, "val_size": 10000},
    "train": {"epochs": 3, "repeats": 2, "batch_size": 256, "optimizer": "adam"},
}
NUMERIC = {"width": [32, 64, 128, 256], "batch_size": [256, 512, 1024, 2048], "depth": [1, 2, 10]}


@pytest.fixture(scope="module")
def grid_study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("order"), GRID, n=12)


def _in_order(levels: list, name: str) -> bool:
    order = NUMERIC.get(name, ["sgd", "adam"])
    seen = [v for v in dict.fromkeys(levels) if v in order or str(v) in map(str, order)]
    return [order.index(v if v in order else int(v)) for v in seen] == sorted(
        order.index(v if v in order else int(v)) for v in seen
    )


def test_grid_tables_and_heatmaps_read_numbers_in_numeric_order(grid_study):
    sections, _ = study_sections(grid_study)
    grid = next(s for s in sections if s.key == "grid")
    assert grid.tables and grid.figures
    for table in grid.tables:
        for name in ("width", "batch_size", "depth", "optimizer"):
            if name in table.frame.columns:
                assert _in_order(table.frame[name].tolist(), name), (table.name, name)
    for fig in grid.figures:
        trace = fig.data[0]
        rows, cols = fig.layout.yaxis.title.text, fig.layout.xaxis.title.text
        assert _in_order(list(trace.y), rows) and _in_order(list(trace.x), cols), fig.layout.title


def test_a_missing_value_does_not_turn_numbers_into_text():
    df = pd.DataFrame({
        "trial_id": [f"t{i}" for i in range(5)], "state": ["COMPLETE"] * 5,
        "val_acc": [0.1, 0.2, 0.3, 0.4, 0.5],
        "config/width": [128, 32, None, 256, 64],  # e.g. a trial that predates the parameter
    })  # fmt: skip
    table = S.grid_table(df, "width", None, "val_acc")
    assert table["width"].tolist()[:4] == [32, 64, 128, 256]  # not 128, 256, 32, 64
    assert pd.isna(table["width"].iloc[4])


def test_missing_grid_cells_in_numeric_order(grid_study):
    sections, _ = study_sections(grid_study, figures=False)
    problems = next(s for s in sections if s.key == "problems")
    missing = next(t for t in problems.tables if t.name == "missing_cells").frame
    keys = [
        (NUMERIC["width"].index(w), NUMERIC["batch_size"].index(b), NUMERIC["depth"].index(d),
         ["sgd", "adam"].index(o))
        for w, b, d, o in missing[["width", "batch_size", "depth", "optimizer"]].itertuples(
            index=False
        )
    ]  # fmt: skip
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 96 - 12  # 12 cells ran


def test_categories_keep_the_spec_order_in_every_figure(grid_study):
    sections, _ = study_sections(grid_study)
    figures = {s.key: s.figures for s in sections}
    (parallel,) = figures["parallel"]
    dim = next(d for d in parallel.data[0].dimensions if d.label == "optimizer")
    assert list(dim.ticktext) == ["sgd", "adam"]
    for fig in figures["grid"]:
        for axis in (fig.data[0].x, fig.data[0].y):
            if set(axis) == {"sgd", "adam"}:
                assert list(axis) == ["sgd", "adam"]


def test_overview_of_a_capped_grid_says_what_was_swept_and_loaded(tmp_path):
    study = make_study(tmp_path, GRID, n=6)
    study.update_meta(data_sizes={"train": 5000, "val": 10000, "test": 10000})
    sections, _ = study_sections(study, figures=False)
    facts = dict(sections[0].tables[0].frame.itertuples(index=False))
    assert facts["trials"].startswith("6 of 6 planned (the grid has 96 cells; capped at 6)")
    assert "batch_size swept" in facts["training"] and "optimizer swept" in facts["training"]
    assert "256" not in facts["training"] and "adam" not in facts["training"]
    assert facts["data"].endswith("(train/val/test 5000/10000/10000)")


def test_status_json_into_a_closed_pipe_ends_quietly(tmp_path):
    study = make_study(tmp_path, n=12)
    # enough output to outgrow the pipe's buffer: the reader stops after one line
    rows = study.trials().to_dict(orient="records")
    big = [dict(rows[0], trial_id=f"x{i:05d}", number=100 + i) for i in range(800)]
    study.write_trials(rows + big)
    for args in (["status", str(study.path), "--json"], ["status", str(study.path), "--all"]):
        cmd = f"{sys.executable} -m sweeper.cli {' '.join(args)} | head -n 1"
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.count("\n") == 1
        assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
