"""Large studies stay readable: the report draws the best trials over a summary of the
rest, cuts long tables (whole in a CSV beside the page), and ``status`` prints the top rows.

The limits are lowered on the 12-trial synthetic study so the large-study paths run in
a second; ``benchmarks/report_scale.py`` times them at 50,000 trials.
"""

from __future__ import annotations

import importlib
import json
import re
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest

from sweeper.cli import main
from sweeper.mirror.storage import count_trials
from sweeper.report import _figures as figs
from sweeper.report import _write, study_sections, write_report
from tests.test_report import make_study

# the module (the package's ``_importance`` is a function of its own)
_importance = importlib.import_module("sweeper.report._importance")
TOP = 3


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("scale"))


@pytest.fixture
def small_limits(monkeypatch):
    """Limits low enough that the 12-trial study counts as a large one."""
    monkeypatch.setattr(figs, "ALL_TRIALS", 4)
    monkeypatch.setattr(figs, "FAINT_LINES", 3)
    monkeypatch.setattr(figs, "MAX_POINTS", 4)
    monkeypatch.setattr(_write, "HTML_ROWS", 11)  # the overview has 11
    monkeypatch.setattr(_importance, "SAMPLE", 6)


def sections_of(study):
    sections, _ = study_sections(study, top=TOP)
    return {s.key: s for s in sections}


def test_curves_show_the_best_trials_over_a_band_of_all(study, small_limits):
    sec = sections_of(study)
    top = sec["best"].tables[0].frame["trial_id"].tolist()
    (fig,) = sec["curves"].figures
    lines = [t for t in fig.data if t.legendgroup and not t.legendgroup.startswith("band-")]
    assert {t.legendgroup for t in lines} == set(top)  # only the best trials' own curves
    assert sum(t.showlegend is not False for t in lines) == TOP  # one legend entry each
    bands = [t for t in fig.data if (t.legendgroup or "").startswith("band-")]
    assert {t.legendgroup for t in bands} == {f"band-{k}" for k in figs.CURVE_PANELS[0]} | {
        f"band-{k}" for k in figs.CURVE_PANELS[1]
    }
    assert any(t.fill == "tonexty" for t in bands) and "band" in sec["curves"].notes[0]


def test_threshold_is_a_histogram_of_every_trial(study, small_limits):
    sec = sections_of(study)["threshold"]
    (fig,) = sec.figures
    (bars,) = fig.data
    table = sec.tables[0].frame
    assert sum(bars.y) == len(table) == 12  # every trial counted once
    reached = table["epochs_to_threshold"].dropna().astype(int).value_counts()
    assert dict(zip(bars.x, bars.y, strict=True)) == {
        **{str(e): n for e, n in reached.items()},
        "not reached": int(table["epochs_to_threshold"].isna().sum()),
    }


def test_parallel_coordinates_draw_the_best_last_in_colour_over_grey(study, small_limits):
    sec = sections_of(study)
    top = sec["best"].tables[0].frame["trial_id"].tolist()
    (fig,) = sec["parallel"].figures
    line = fig.data[0].line
    colour = list(line.color)
    assert len(colour) == figs.FAINT_LINES + TOP  # the rest sampled down
    grey, best = colour[: figs.FAINT_LINES], colour[figs.FAINT_LINES :]
    assert set(grey) == {line.cmin} and min(best) > line.cmin  # grey at the scale's bottom
    assert line.colorscale[0][1] == figs._GREY and "best 3" in fig.layout.title.text
    assert line.colorscale[-1][0] == 1.0  # plotly.js ignores a scale that ends short of 1
    metric = list(fig.data[0].dimensions[-1]["values"])[figs.FAINT_LINES :]
    assert sorted(metric, reverse=True) == sorted(
        sec["best"].tables[0].frame["val_acc"], reverse=True
    )
    assert len(top) == TOP and "Drag along an axis" in sec["parallel"].notes[0]


def test_scatter_samples_points_and_keeps_the_best(study, small_limits):
    (fig,) = sections_of(study)["params"].figures
    shown = [tid for trace in fig.data for tid in trace.text]
    assert len(shown) <= figs.MAX_POINTS + TOP and "random" in fig.layout.title.text


def test_long_tables_are_cut_on_the_page_and_whole_beside_it(study, small_limits, tmp_path):
    page, *csvs = write_report(study, "html", tmp_path / "r.html", top=TOP)
    assert {p.name for p in csvs} == {"epochs_to_threshold.csv"}
    assert csvs[0].parent == tmp_path / "r_csv"
    assert len(pd.read_csv(csvs[0])) == 12  # whole
    text = page.read_text()
    assert "The first 11 of 12 rows; every row is in r_csv/epochs_to_threshold.csv" in text
    table = text.split('id="threshold"')[1].split("</table>")[0]
    assert len(re.findall(r"<tr[ >]", table)) == 1 + 11  # header + the first rows


def test_importance_on_a_sample_says_so(study, small_limits):
    note = sections_of(study)["importance"].notes[0]
    assert note.startswith("Optuna fANOVA over a random sample of 6 of the 10 finished trials")


def test_varying_params_is_one_pass():
    trials = [SimpleNamespace(params={"a": 1, "b": i % 2, "c": "x"}) for i in range(5)]
    assert _importance.varying_params(trials) == {"b"}


def test_count_query_matches_optuna(study):
    stored = optuna.load_study(study_name="synthetic", storage=study.optuna_url)
    assert count_trials(study.optuna_url, "synthetic") == len(stored.trials) == 12
    assert count_trials(study.optuna_url, "no such study") is None


def test_status_prints_a_summary_and_the_top_rows(study, capsys):
    assert main(["status", str(study.path), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "12 trials: 10 complete, 1 pruned, 1 fail" in out
    rows = [ln for ln in out.splitlines() if re.search(r"\bt0\d\d\b", ln)]
    assert len(rows) == 3 + 1  # the top 3 rows, and the best's line
    assert f"... and 9 more trials (every row: sweeper status {study.path} --all)" in out
    assert main(["status", str(study.path), "--all"]) == 0
    out = capsys.readouterr().out
    assert sum(bool(re.search(r"│ t0\d\d ", ln)) for ln in out.splitlines()) == 12
    assert "more trials" not in out


def test_status_json_streams_every_trial(study, capsys):
    assert main(["status", str(study.path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert len(status["trials"]) == 12 and status["optuna"]["trials"] == 12
    assert status["best"]["trial_id"] == status["trials"][0]["trial_id"]
    failed = next(t for t in status["trials"] if t["state"] == "FAIL")
    assert failed["val_acc"] is None  # NaN as null, as before
