"""The report: pure summaries, the HTML/Markdown/CSV writers, and the page in a real browser.

A synthetic study folder (no Ray, no training) stands in for a finished random sweep with
repeats, a pruned, a failed and a diverged trial.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweeper.cli import main
from sweeper.report import _summary as S
from sweeper.report import collect, context, history, write_report
from sweeper.sinks.mirror import OptunaMirror
from sweeper.spec import spec_from_dict
from sweeper.store import Study

SPEC = {
    "name": "synthetic",
    "method": "random",
    "run_cap": 12,
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {
        "width": {"values": [16, 32, 64]},
        "optimizer": {"values": ["adam", "sgd"]},
        "lr": {"min": 1.0e-4, "max": 1.0e-1, "distribution": "log_uniform_values"},
    },
    "model": {"name": "mlp", "args": {"depth": 1}},
    "train": {"epochs": 3, "repeats": 2},
}


def make_study(root: Path, spec: dict = SPEC, n: int = 12) -> Study:
    """A study folder as a finished run leaves it: table, history, optuna.db."""
    spec_obj = spec_from_dict(json.loads(json.dumps(spec)), "synthetic.yaml")
    study = Study.create(root / spec_obj.name, spec_obj, "synthetic.yaml", n)
    rng = np.random.default_rng(0)
    mirror = OptunaMirror(study.optuna_url, spec_obj)
    rows = []
    for i in range(n):
        params = {
            name: (
                p["values"][i % len(p["values"])]
                if "values" in p
                else float(10 ** rng.uniform(-4, -1))
            )
            for name, p in spec["parameters"].items()
        }
        width = params.get("width", 32)
        state, epochs, error = "COMPLETE", 3, ""
        if i == n - 1:
            state, epochs, error = "FAIL", 0, "RuntimeError: out of memory"
        elif i == n - 2:
            state, epochs = "PRUNED", 1
        diverged = int(i == n - 3)
        curve = {}
        tid = f"t{i:03d}"
        for epoch in range(1, epochs + 1):
            acc = 0.5 + 0.1 * epoch + width / 1000 + 0.01 * rng.standard_normal()
            metrics = {"train_loss": 1.5 - 0.3 * epoch, "val_loss": 1.4 - 0.3 * epoch,
                       "train_acc": acc - 0.02, "val_acc": acc, "epoch": epoch}  # fmt: skip
            study.append_history(tid, epoch, metrics)
            curve[epoch] = acc
        row = {"trial_id": tid, "number": i, "state": state, "epochs": epochs, "wall_s": 1.0,
               "error": error, **{f"config/{k}": v for k, v in params.items()}}  # fmt: skip
        if epochs:
            final = curve[epochs]
            row.update(val_acc=final, val_loss=1.4 - 0.3 * epochs, best_val_acc=max(curve.values()), params=width * 800,
                       test_acc=final - 0.01, diverged=diverged,
                       val_acc_r0=final - 0.005, val_acc_r1=final + 0.005)  # fmt: skip
        rows.append(row)
        mirror.record(tid, params, row, curve)
    study.write_trials(rows)
    study.set_state("finished")
    return study


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Study:
    return make_study(tmp_path_factory.mktemp("report"))


# -- pure summaries ---------------------------------------------------------------------


def test_collect_types_params_by_the_spec(synthetic):
    df = collect(synthetic)
    ctx = context(synthetic)
    assert ctx.params == ["width", "optimizer", "lr"] and ctx.labels["width"] == [16, 32, 64]
    assert set(df["config/width"]) == {16, 32, 64} and set(df["config/optimizer"]) == {
        "adam",
        "sgd",
    }
    assert df["state"].value_counts().to_dict() == {"COMPLETE": 10, "PRUNED": 1, "FAIL": 1}


def test_grid_table_counts_repeats_and_other_parameters(synthetic):
    df = collect(synthetic)
    table = S.grid_table(df, "width", "optimizer", "val_acc")
    done = df[df["state"] == "COMPLETE"]
    assert table["count"].sum() == 2 * len(done)  # two repeats per finished trial
    cell = done[(done["config/width"] == 16) & (done["config/optimizer"] == "adam")]
    values = np.concatenate([cell["val_acc_r0"], cell["val_acc_r1"]])
    row = table[(table["width"] == 16) & (table["optimizer"] == "adam")].iloc[0]
    assert row["mean"] == pytest.approx(values.mean())
    assert row["std"] == pytest.approx(values.std(ddof=1))
    assert row["count"] == len(values)
    assert list(table["width"].drop_duplicates()) == [16, 32, 64]  # levels in order


def test_continuous_parameter_is_binned_for_tables(synthetic):
    df = collect(synthetic)
    table = S.grid_table(df, "lr", None, "val_acc", {"lr": "log_uniform_values"})
    assert 2 <= len(table) <= S.BINS and table["count"].sum() == 20
    assert all("–" in str(v) for v in table["lr"])


def test_epochs_to_threshold_and_problems(synthetic):
    df, hist = collect(synthetic), history(synthetic)
    table = S.epochs_to_threshold(hist, df, "val_acc", 0.7, True, ["width"])
    by_id = table.set_index("trial_id")["epochs_to_threshold"]
    for tid, rows in hist.groupby("trial_id"):
        hit = rows.loc[rows["val_acc"] >= 0.7, "epoch"]
        assert (by_id[tid] == hit.min()) if len(hit) else math.isnan(by_id[tid])
    probs = S.problems(df, ["width"]).set_index("trial_id")
    assert probs.loc["t011", "state"] == "FAIL" and "out of memory" in probs.loc["t011", "error"]
    assert probs.loc["t010", "state"] == "PRUNED"
    assert probs.loc["t009", "state"] == "COMPLETE (diverged)"
    assert list(probs.index[:2]) == ["t011", "t010"]  # failures first


def with_a_pruned_leader(study: Study) -> Study:
    """``study`` with its pruned trial (t010) given the best metric of all: never a result."""
    df = study.trials()
    df.loc[df["trial_id"] == "t010", "val_acc"] = 0.99
    study.write_trials(df.to_dict(orient="records"))
    return study


def test_trial_table_has_results_best_first_then_the_other_trials(tmp_path):
    df = collect(with_a_pruned_leader(make_study(tmp_path)))
    df.loc[df["trial_id"] == "t003", "state"] = "RUNNING"  # a trial still training
    table = S.trial_table(df, ["width", "optimizer", "lr"], "val_acc", maximize=True)
    assert len(table) == len(df) and table["state"].tolist()[-3:] == ["RUNNING", "PRUNED", "FAIL"]
    results = table[table["state"] == "COMPLETE"]
    assert results["val_acc"].is_monotonic_decreasing and len(results) == 9
    assert list(table.columns[:7]) == ["trial_id", "state", "epochs", "wall_s", "width",
                                       "optimizer", "lr"]  # fmt: skip
    best = S.best_trials(df, ["width", "optimizer", "lr"], "val_acc", True, k=3)
    assert best["trial_id"].tolist() == table["trial_id"].tolist()[:3]
    assert list(best.columns[:3]) == ["rank", "trial_id", "val_acc"]
    lowest = S.trial_table(df, [], "val_acc", maximize=False)
    assert lowest["val_acc"].iloc[0] == results["val_acc"].min()


def test_a_swept_parameter_named_like_a_column_keeps_its_prefix():
    df = pd.DataFrame({"trial_id": ["a", "b"], "state": ["COMPLETE"] * 2, "epochs": [3, 5],
                       "config/epochs": [3, 5], "val_acc": [0.5, 0.7]})  # fmt: skip
    table = S.trial_table(df, ["epochs"], "val_acc", maximize=True)
    assert list(table.columns) == ["trial_id", "state", "epochs", "config/epochs", "val_acc"]
    assert table["trial_id"].tolist() == ["b", "a"]


def test_status_never_picks_a_pruned_trial_as_best(tmp_path, capsys):
    study = with_a_pruned_leader(make_study(tmp_path))
    assert main(["status", str(study.path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["best"]["trial_id"] == status["trials"][0]["trial_id"] != "t010"
    assert [t["state"] for t in status["trials"]][-2:] == ["PRUNED", "FAIL"]
    assert main(["status", str(study.path)]) == 0
    out = capsys.readouterr().out
    assert (
        f"best val_acc: {status['best']['val_acc']:.4f} (trial {status['best']['trial_id']})" in out
    )


def test_missing_grid_cells_are_listed():
    df = pd.DataFrame({"config/a": [1, 1, 2], "config/b": ["x", "y", "x"]})
    missing = S.missing_cells(df, {"a": [1, 2], "b": ["x", "y"]})
    assert missing.to_dict(orient="records") == [{"a": 2, "b": "y"}]


# -- writers ----------------------------------------------------------------------------


def test_markdown_and_csv_tables(synthetic, tmp_path):
    (md,) = write_report(synthetic, "md", tmp_path / "r.md")
    text = md.read_text()
    for heading in ("## Best trials", "### val_acc by width × optimizer", "fANOVA",
                    "## Failed, pruned and missing trials", "out of memory"):  # fmt: skip
        assert heading in text
    assert re.search(r"\| 16 \| 0\.\d{4} ± 0\.\d{4} \(\d+\) \|", text)
    files = {p.name for p in write_report(synthetic, "csv", tmp_path / "csv")}
    assert {"best_trials.csv", "problems.csv", "importance.csv", "epochs_to_threshold.csv"} <= files
    grid = pd.read_csv(tmp_path / "csv" / "grid_width__optimizer.csv")
    assert list(grid.columns) == ["width", "optimizer", "mean", "std", "count"]
    imp = pd.read_csv(tmp_path / "csv" / "importance.csv")
    assert set(imp["parameter"]) == {"width", "optimizer", "lr"}
    assert imp["importance"].sum() == pytest.approx(1.0)


def test_html_is_self_contained_with_plotly_once(synthetic, tmp_path):
    assert main(["report", str(synthetic.path), "-o", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("plotly.js v") <= 2 and "Plotly.newPlot" in page  # the library's banner
    assert len(re.findall(r"<script[^>]*>\s*/\*\*\s*\n?\s*\* plotly\.js", page)) == 1
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing to fetch
    assert page.count('class="fig"') == len(re.findall(r'id="fig-[\w-]+"', page)) >= 7


def test_report_cli_does_not_start_or_import_ray(synthetic, tmp_path):
    out = tmp_path / "r.html"
    code = (
        "import sys; from sweeper.cli import main; "
        f"rc = main(['report', {str(synthetic.path)!r}, '-o', {str(out)!r}]); "
        "bad = [m for m in ('ray', 'torch', 'wandb') if m in sys.modules]; "
        "print('loaded:', bad); sys.exit(rc or bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.stat().st_size > 1_000_000


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- in a real browser ------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-unsafe-swiftshader", "--hide-scrollbars", "--virtual-time-budget=5000",
]  # fmt: skip

# Injected into a copy of the page before anything else: collects console errors and
# uncaught exceptions, then writes them into the DOM for --dump-dom to carry out.
PROBE = """<script>
window.__errors = [];
const __error = console.error.bind(console);
console.error = (...a) => { window.__errors.push(a.map(String).join(' ')); __error(...a); };
window.addEventListener('error', e => window.__errors.push('uncaught: ' + e.message));
window.addEventListener('unhandledrejection', e => window.__errors.push('rejection: ' + e.reason));
window.addEventListener('load', () => setTimeout(() => {
  const p = document.createElement('pre'); p.id = '__errors';
  p.textContent = JSON.stringify(window.__errors); document.body.appendChild(p);
}, 1000));
</script>"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def run_chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


class PlotCounter(HTMLParser):
    """Counts plotly graph divs and, for each, the ``main-svg`` layers drawn inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[int | None] = []  # plot index for open divs that start a plot
        self.current: list[int] = []
        self.svgs: list[int] = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "div":
            if "js-plotly-plot" in classes:
                self.svgs.append(0)
                self.current.append(len(self.svgs) - 1)
                self.stack.append(len(self.svgs) - 1)
            else:
                self.stack.append(None)
        if tag == "svg" and "main-svg" in classes and self.current:
            self.svgs[self.current[-1]] += 1

    def handle_endtag(self, tag):
        if tag == "div" and self.stack and self.stack.pop() is not None:
            self.current.pop()


def check_in_browser(report: Path, workdir: Path, screenshot: Path) -> dict:
    """Open ``report`` in headless Chromium: console errors, plots drawn, a screenshot."""
    page = workdir / "probe.html"
    page.write_text(report.read_text().replace("<head>", "<head>" + PROBE, 1))
    dom = run_chromium(
        page, workdir / "profile", "--window-size=1280,2000", f"--screenshot={screenshot}",
        "--dump-dom",
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="__errors">(.*?)</pre>', dom.stdout, re.S)
    assert found, "the page never finished loading"
    counter = PlotCounter()
    counter.feed(dom.stdout)
    uncaught = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln and "Uncaught" in ln]
    return {"errors": json.loads(found.group(1)) + uncaught, "svgs": counter.svgs}


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(synthetic, tmp_path):
    (report,) = write_report(synthetic, "html", tmp_path / "report.html")
    figures = report.read_text().count('class="fig"')
    screenshot = Path(os.environ.get("SWEEPER_REPORT_SCREENSHOT", tmp_path / "report.png"))
    result = check_in_browser(report, tmp_path, screenshot)
    assert result["errors"] == []
    assert len(result["svgs"]) == figures >= 7  # every figure became a plot...
    assert all(n >= 1 for n in result["svgs"])  # ...and every plot drew its SVG layers
    assert screenshot.stat().st_size > 20_000 and screenshot.read_bytes()[:4] == b"\x89PNG"
