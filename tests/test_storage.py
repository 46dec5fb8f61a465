"""The Optuna mirror behind a storage URL: SQLite, PostgreSQL, MySQL, journal file.

The PostgreSQL tests start a throwaway server of their own (:mod:`tests.support.postgres`)
and skip, saying why, where none can be had.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from sweeper.cli import main
from sweeper.mirror.storage import masked, open_storage, resolve
from sweeper.sinks.mirror import CatchingUpMirror, synced_mirror
from sweeper.spec import spec_from_dict
from sweeper.states import TrialState
from sweeper.store import Study
from tests.support import postgres

XOR = {
    "method": "grid",
    "parameters": {"width": {"values": [1, 2]}, "depth": {"values": [1, 2]}},
    "model": {"name": "xor_mlp"},
    "data": {"name": "xor"},
    "train": {"epochs": 1, "batch_size": 128, "optimizer": "sgd", "lr": 0.1},
    "resources": {"cpus": 1},
}


def xor_sweep(folder: Path, name: str, **extra: Any) -> Path:
    """A 2 x 2 grid of XOR MLPs, one epoch each (about a second a trial)."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **XOR, **extra}, sort_keys=False))
    return path


# -- URLs -------------------------------------------------------------------------------
def test_the_saved_form_masks_a_password_and_keeps_env_references() -> None:
    assert masked("postgresql://u:p@ss@h:5/db") == "postgresql://u:***@h:5/db"
    assert masked("postgresql://u:${env:PW}@h/db") == "postgresql://u:${env:PW}@h/db"
    assert masked("postgresql://h/db?password=zz&x=1") == "postgresql://h/db?password=***&x=1"
    assert masked("journal:///tmp/s.log") == "journal:///tmp/s.log"
    env = {"PW": "a@b/c", "PGPASSWORD": "q:r"}
    assert resolve("postgresql://u:${env:PW}@h/db", "f", env) == "postgresql://u:a%40b%2Fc@h/db"
    assert resolve("postgresql://u:***@h/db", "f", env) == "postgresql://u:q%3Ar@h/db"


def test_a_masked_password_with_nothing_to_fill_it_is_one_line() -> None:
    with pytest.raises(Exception, match=r"^s\.yaml: storage: the password of .*\*\*\*.*--storage"):
        resolve("postgresql://u:***@h/db", "s.yaml", {})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h/0", "unknown storage 'redis://h/0'; expected a URL starting with sqlite:///, "
         "postgresql://, mysql:// or journal:///"),
        ("sqlite:/x.db", "expected sqlite:///path/to/file.db"),
        ("journal:", "expected journal:///path/to/file.log"),
    ],
)  # fmt: skip
def test_a_bad_storage_is_a_spec_error_naming_file_and_key(tmp_path, capsys, url, message):
    sweep = xor_sweep(tmp_path, "bad", storage=url)
    assert main(["run", str(sweep), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sweeper: error: {sweep}: storage: {message}")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_closed_port_at_start_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    url = f"postgresql://u:hunter2@127.0.0.1:{postgres.free_port()}/db"
    sweep = xor_sweep(tmp_path, "closed")
    assert main(["run", str(sweep), "--out", str(tmp_path / "runs"), "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hunter2" not in err
    assert err.startswith("sweeper: error: --storage: postgresql://u:***@127.0.0.1:")
    assert "Connection refused" in err
    assert not (tmp_path / "runs").exists()


def test_a_missing_mysql_driver_names_the_pip_package(tmp_path, capsys):
    pytest.importorskip("sqlalchemy")
    try:
        import MySQLdb  # noqa: F401

        pytest.skip("mysqlclient is installed")
    except ImportError:
        pass
    sweep = xor_sweep(tmp_path, "my", storage="mysql://u:pw@127.0.0.1/db")
    assert main(["run", str(sweep), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"sweeper: error: {sweep}: storage: mysql://u:***@127.0.0.1/db needs the Python module "
        "MySQLdb: pip install mysqlclient (or mysql+pymysql:// with pip install pymysql)"
    )


# -- the mirror, with a book standing in for the trial table ------------------------------
class Book:
    """What the mirror reads of the driver's TrialBook: rows, curves, params, spec."""

    def __init__(self, n: int) -> None:
        self.spec = spec_from_dict({"name": "unit", **XOR}, "unit.yaml")
        self.rows: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, dict[int, float]] = {}
        for i in range(n):
            self.add(i)

    def add(self, i: int) -> tuple[str, dict[str, Any], dict[str, Any], dict[int, float]]:
        tid = f"t{i}"
        state = TrialState.FAIL if i == 2 else TrialState.COMPLETE
        row = {"trial_id": tid, "number": i, "state": state, "config/width": 1 + i % 2,
               "config/depth": 1 + (i // 2) % 2, "epochs": 1}  # fmt: skip
        if state is TrialState.COMPLETE:
            row["val_acc"] = 0.5 + i / 100
        self.rows[tid], self.curves[tid] = row, {1: row.get("val_acc", float("nan"))}
        return tid, self.params(tid), row, self.curves[tid]

    def params(self, tid: str) -> dict[str, Any]:
        return {k[7:]: v for k, v in self.rows[tid].items() if k.startswith("config/")}


def held(url: str, name: str = "unit") -> dict[str, tuple[str, float | None]]:
    """trial_id -> (state, value) of the storage's study, each trial once."""
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).trials
    ids = [t.user_attrs["trial_id"] for t in trials]
    assert len(ids) == len(set(ids)), f"a trial twice: {ids}"
    return {t.user_attrs["trial_id"]: (t.state.name, t.value) for t in trials}


def expected(book: Book) -> dict[str, tuple[str, float | None]]:
    return {t: (r["state"].value, r.get("val_acc")) for t, r in book.rows.items()}


def test_a_journal_file_round_trip_and_a_rebuild_keeps_other_studies(tmp_path):
    url = f"journal://{tmp_path / 'j' / 'mirror.log'}"
    book = Book(4)
    synced_mirror(url, book.spec, book, owner=tmp_path).close()
    assert held(url) == expected(book)
    other = optuna.create_study(study_name="other", storage=open_storage(url))
    other.enqueue_trial({"x": 1})
    del book.rows["t3"]  # a trial the table no longer has: the study is made again
    synced_mirror(url, book.spec, book, owner=tmp_path).close()
    assert held(url) == expected(book)
    names = {s.study_name for s in optuna.get_all_study_summaries(open_storage(url))}
    assert names == {"unit", "other"}


def test_the_mirror_catches_up_after_an_outage_with_one_warning(tmp_path, monkeypatch):
    import sweeper.sinks.mirror as M

    url = f"sqlite:///{tmp_path / 'm.db'}"
    real_open, down, now, warnings = M.open_storage, [True], [0.0], []

    def flaky(u: str) -> Any:
        if down[0]:
            raise ConnectionError("connection refused")
        return real_open(u)

    monkeypatch.setattr(M, "open_storage", flaky)
    book = Book(1)
    mirror = CatchingUpMirror(url, book, warnings.append, clock=lambda: now[0])
    for i in (1, 2, 3):  # down the whole time: kept, no more warnings, no retry before 1 s
        mirror.record(*book.add(i))
    assert len(warnings) == 1 and "connection refused" in warnings[0]
    down[0] = False
    mirror.record(*book.add(4))  # the backoff has not passed: still waiting
    assert not (tmp_path / "m.db").exists()
    now[0] = 1.5
    mirror.record(*book.add(5))
    assert held(url) == expected(book) and len(book.rows) == 6
    assert len(warnings) == 2 and "is back; it holds 6 trials" in warnings[1]
    mirror.record(*book.add(6))
    mirror.close()
    assert held(url) == expected(book)


def test_a_mirror_down_until_the_end_catches_up_on_close(tmp_path, monkeypatch):
    import sweeper.sinks.mirror as M

    url = f"journal://{tmp_path / 'm.log'}"
    real_open, down, warnings = M.open_storage, [True], []
    monkeypatch.setattr(M, "open_storage", lambda u: real_open(u) if not down[0] else 1 / 0)
    book = Book(2)
    mirror = CatchingUpMirror(url, book, warnings.append, clock=lambda: 0.0)
    mirror.record(*book.add(2))
    down[0] = False
    mirror.close()
    assert held(url) == expected(book) and len(warnings) == 2


# -- a real PostgreSQL server -----------------------------------------------------------
@pytest.mark.slow
def test_a_sweep_mirrors_into_postgresql_that_optuna_dashboard_opens(
    tmp_path, pg, ray_session, capsys, monkeypatch
):
    out = tmp_path / "runs"
    sweep = xor_sweep(tmp_path, "pgsweep")
    assert main(["run", str(sweep), "--out", str(out), "--storage", pg.url()]) == 0
    study = Study.open("pgsweep", out)
    df = study.trials().set_index("trial_id")
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"}

    # PostgreSQL holds every trial once, with the table's states and values.
    trials = optuna.load_study(study_name="pgsweep", storage=open_storage(pg.url())).trials
    assert sorted(t.user_attrs["trial_id"] for t in trials) == sorted(df.index)
    for t in trials:
        row = df.loc[t.user_attrs["trial_id"]]
        assert t.state.name == row["state"] and t.value == pytest.approx(row["val_acc"])
        assert t.params == {"width": row["config/width"], "depth": row["config/depth"]}

    # optuna-dashboard lists the study and its trials.
    storage = open_storage(pg.url())
    summaries = postgres.dashboard_get(storage, "/api/studies")["study_summaries"]
    (mine,) = [s for s in summaries if s["study_name"] == "pgsweep"]
    detail = postgres.dashboard_get(storage, f"/api/studies/{mine['study_id']}")
    assert len(detail["trials"]) == 4
    assert {tr["state"] for tr in detail["trials"]} == {"Complete"}
    values = sorted(v for tr in detail["trials"] for v in tr["values"])
    assert values == pytest.approx(sorted(df["val_acc"]))

    # The password is in no file of the study folder; the saved spec has it masked.
    for f in study.path.rglob("*"):
        if f.is_file():
            assert postgres.PASSWORD.encode() not in f.read_bytes(), f
    assert (
        f"storage: postgresql://{postgres.USER}:***@127.0.0.1:{pg.port}/"
        in (study.path / "spec.yaml").read_text()
    )

    # status says where the mirror lives and what it holds (the password from the env).
    capsys.readouterr()
    monkeypatch.setenv("PGPASSWORD", postgres.PASSWORD)
    assert main(["status", "pgsweep", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["optuna"]
    assert info == {"storage": masked(pg.url()), "trials": 4, "note": ""}

    # Resume reads the saved spec: without the password anywhere it is one line, exit 2.
    monkeypatch.delenv("PGPASSWORD")
    study.set_state("interrupted", pid=None)
    assert main(["resume", "pgsweep", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pass --storage URL or set PGPASSWORD" in err

    # Another folder running a study of the same name into the same database is refused.
    again = main(["run", str(sweep), "--out", str(tmp_path / "other"), "--storage", pg.url()])
    assert again == 2
    assert "already holds an Optuna study named 'pgsweep'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_mirror_catches_up_after_the_postgresql_server_restarts(pg):
    url, now, warnings = pg.url(), [0.0], []
    book = Book(2)
    book.spec = book.spec.model_copy(update={"name": "restart"})
    mirror = CatchingUpMirror(url, book, warnings.append, clock=lambda: now[0])
    mirror.record(*book.add(2))
    pg.stop()
    try:
        for i in (3, 4):
            mirror.record(*book.add(i))
    finally:
        pg.start()
    assert len(warnings) == 1 and "the mirror catches up" in warnings[0]
    now[0] = 100.0
    mirror.record(*book.add(5))
    mirror.close()
    assert held(url, "restart") == expected(book)
    assert len(warnings) == 2 and "postgresql://sweeper:***@" in warnings[1]


@pytest.mark.slow
def test_a_sweep_into_a_journal_file(tmp_path, ray_session):
    log = tmp_path / "shared" / "studies.log"
    out = tmp_path / "runs"
    sweep = xor_sweep(tmp_path, "jsweep", storage=f"journal://{log}")
    assert main(["run", str(sweep), "--out", str(out)]) == 0
    df = Study.open("jsweep", out).trials()
    got = held(f"journal://{log}", "jsweep")
    assert got == {r.trial_id: (r.state, pytest.approx(r.val_acc)) for r in df.itertuples()}
    assert not (out / "jsweep" / "optuna.db").exists()


def test_a_usage_error_does_not_echo_the_password(tmp_path, capsys):
    sweep = xor_sweep(tmp_path, "echo")
    argv = ["run", str(sweep), "--storage", "postgresql://u:hunter2@h/db", "--bogus"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "unrecognized arguments: --bogus" in err
    assert main(["run", str(sweep), "postgresql://u:hunter2@h/db"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "postgresql://u:***@h/db" in err
