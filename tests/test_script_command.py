"""A script trial's command line and files, compared with W&B's own agent (wandb 0.31).

W&B's agent builds a run's argv inside ``Agent._command_run``; these tests run that very
method with its process class replaced by a recorder, so what is compared is W&B's own
behaviour, not a copy of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sweeper.cli import main
from sweeper.errors import SpecError
from sweeper.script import build_command, sweep_args
from sweeper.script.command import MACROS
from sweeper.script.launch import param_file_text, plan_launch
from sweeper.spec import spec_from_dict
from sweeper.spec.program import check_program

wandb_agent = pytest.importorskip("wandb.wandb_agent")

CONFIG = {
    "lr": 0.001,
    "epochs": 3,
    "use_bn": True,
    "dropout_off": False,
    "name": "adam w",
    "sizes": [32, 64],
    "nothing": None,
    "opt": {"name": "sgd", "momentum": 0.9, "nesterov": True},
}
ALL_MACROS = [f"${{{m}}}" for m in MACROS]


def wandb_run(command: list[str] | None, config: dict, tmp_path: Path, monkeypatch) -> dict:
    """What W&B's agent starts for one run of ``config``: argv, env and written files."""
    started: dict = {}

    class Recorder:
        def __init__(self, command=None, env=None, **kwargs):
            started.update(argv=command, env=env)

    monkeypatch.setattr(wandb_agent, "AgentProcess", Recorder)
    for key, value in {"WANDB_DIR": str(tmp_path), "WANDB_SWEEP_ID": "sw1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):
        monkeypatch.setenv(key, "")  # restored after the test: the agent sets them
    agent = object.__new__(wandb_agent.Agent)
    agent.__dict__.update(
        _sweep_command=list(command) if command else None,
        _function=None,
        _in_jupyter=False,
        _forward_signals=False,
        _run_processes={},
    )
    agent._command_run(
        {
            "run_id": "r1",
            "program": "train.py",
            "args": {k: {"value": v} for k, v in config.items()},
        }
    )
    return started


def ours(command: list[str] | None, config: dict, tmp_path: Path) -> list[str]:
    return build_command(
        command,
        program="train.py",
        config=config,
        interpreter="python",
        args_json_file=str(tmp_path / "wandb" / "sweep-sw1" / "config-r1.json"),
        getenv={"HOME_X": "/h", "EMPTY": ""}.get,
    )


@pytest.mark.parametrize(
    "command",
    [
        None,
        ["${env}", "${interpreter}", "${program}", "${args}"],
        ["${env}", "python3", "${program}", *ALL_MACROS[3:]],
        ["${interpreter}", "-m", "pkg.train", "${args_no_hyphens}", "--out=${program}"],
        ["${program}", "${args_json}", "${unknown_macro}", "lit"],
        ["bash", "-c", "${envvar:HOME_X}/run ${envvar:EMPTY}x${envvar:UNSET_Y}", "${args}"],
    ],
)
def test_argv_is_what_wandbs_agent_runs(command, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME_X", "/h")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET_Y", raising=False)
    theirs = wandb_run(command, CONFIG, tmp_path, monkeypatch)["argv"]
    assert ours(command, CONFIG, tmp_path) == theirs


def test_flag_formats_match_wandbs_function():
    from wandb.sdk.launch.sweeps import utils

    theirs = utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in CONFIG.items()}})
    mine = sweep_args(CONFIG)
    assert mine == {k: v for k, v in theirs.items() if k != "args_dict"}
    assert "--opt={'name': 'sgd', 'momentum': 0.9, 'nesterov': True}" in mine["args"]
    assert "--use_bn=True" in mine["args"] and "--sizes=[32, 64]" in mine["args"]
    assert "--dropout_off" not in mine["args_no_boolean_flags"]


def test_param_and_json_files_match_the_agents(tmp_path, monkeypatch):
    """The agent's config-<run>.yaml and .json, byte for byte, and where they are."""
    command = ["${program}", "${args_json_file}"]
    theirs = wandb_run(command, CONFIG, tmp_path / "w", monkeypatch)
    spec = spec_from_dict({"name": "sw1", "program": "train.py", "command": command}, "test.yaml")
    launch = plan_launch(
        spec,
        CONFIG,
        study_dir=tmp_path / "s",
        trial_dir=tmp_path / "s" / "t",
        run_id="r1",
        base_env={"WANDB_SERVICE": "x", "PATH": "/bin"},
        watch_pid=1,
        grace_s=2,
    )
    yaml_path = tmp_path / "s" / "wandb" / "sweep-sw1" / "config-r1.yaml"
    agent_yaml = Path(theirs["env"]["WANDB_SWEEP_PARAM_PATH"])
    assert agent_yaml == tmp_path / "w" / "wandb" / "sweep-sw1" / "config-r1.yaml"
    assert launch.files[yaml_path] == agent_yaml.read_text() == param_file_text(CONFIG)
    json_path = yaml_path.with_suffix(".json")
    assert launch.files[json_path] == (agent_yaml.with_suffix(".json")).read_text()
    assert launch.argv == ["train.py", str(json_path)]
    env = launch.env
    assert env["WANDB_SWEEP_PARAM_PATH"] == str(yaml_path) and env["WANDB_RUN_ID"] == "r1"
    assert env["WANDB_DIR"] == str(tmp_path / "s") and env["WANDB_SWEEP_ID"] == "sw1"
    assert env["WANDB_MODE"] == "offline" and env["WANDB_RESUME"] == "allow"
    assert "WANDB_SERVICE" not in env and env["PATH"] == "/bin"
    assert env["PYTHONPATH"].endswith("script/hook")


def test_wandb_init_reads_the_param_file_as_nested_config(tmp_path):
    from wandb.sdk.lib import config_util

    path = tmp_path / "config.yaml"
    path.write_text(param_file_text(CONFIG))
    assert config_util.dict_from_config_file(str(path)) == CONFIG


def test_every_macro_wandbs_agent_fills_is_known():
    """The macro list the spec checks is the list W&B 0.31's agent fills in for a program."""
    from wandb.sdk.launch.sweeps import utils

    filled = set(utils.create_sweep_command_args({"args": {}})) - {"args_dict"}
    assert set(MACROS) == filled | {"env", "interpreter", "program", "args_json_file"}


def _spec(tmp_path: Path, **raw) -> object:
    return spec_from_dict({"name": "s", "program": "train.py", **raw}, str(tmp_path / "s.yaml"))


def test_check_makes_the_program_absolute_from_cwd(tmp_path):
    (tmp_path / "train.py").write_text("")
    spec = check_program(_spec(tmp_path), "s.yaml", cwd=tmp_path)
    assert spec.program == str(tmp_path / "train.py")


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"program": "missing.py"}, "program", "no such file"),
        (
            {"parameters": {"opt": {"parameters": {"lr": {"value": 1}}}, "opt.lr": {"value": 2}}},
            "parameters.opt.lr",
            "given twice (nested and as a dotted name)",
        ),
    ],
)
def test_check_errors_name_the_key(tmp_path, raw, key, message):
    (tmp_path / "train.py").write_text("")
    with pytest.raises(SpecError) as err:
        check_program(_spec(tmp_path, **raw), "s.yaml", cwd=tmp_path)
    assert err.value.key == key and message in err.value.message


def test_a_command_without_program_runs_as_it_is(tmp_path):
    spec = spec_from_dict(
        {"name": "s", "command": ["${env}", "python3", "-m", "pkg.train", "${args}"]}, "s.yaml"
    )
    assert check_program(spec, "s.yaml", cwd=tmp_path) == spec  # nothing to find
    launch = plan_launch(
        spec, {"lr": 0.1}, study_dir=tmp_path, trial_dir=tmp_path / "t", run_id="r",
        base_env={}, watch_pid=1, grace_s=1,
    )  # fmt: skip
    assert launch.argv == ["/usr/bin/env", "python3", "-m", "pkg.train", "--lr=0.1"]


def test_json_macro_is_the_whole_config():
    argv = build_command(
        ["${args_json}"], program="p", config=CONFIG, interpreter="py",
        args_json_file="f", getenv=lambda _: None,
    )  # fmt: skip
    assert json.loads(argv[0]) == CONFIG


def test_check_names_a_missing_program(tmp_path, monkeypatch, capsys):
    (tmp_path / "sweep.yaml").write_text("name: s\nprogram: nope.py\nrun_cap: 1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "sweep.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep.yaml: program: no such file" in err


def test_check_prints_the_command(tmp_path, monkeypatch, capsys):
    (tmp_path / "train.py").write_text("")
    (tmp_path / "sweep.yaml").write_text(
        "name: s\nprogram: train.py\nmethod: grid\n"
        "command:\n  - ${env}\n  - python3\n  - ${program}\n  - ${args_no_hyphens}\n"
        "parameters: {opt: {parameters: {lr: {values: [0.1]}}}, opt.config.lr: {value: 1}}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["check", "sweep.yaml"]) == 0
    out = capsys.readouterr().out
    assert f"runs         program {tmp_path / 'train.py'}" in out
    # nested: one mapping argument; a dotted name: one flat argument (Hydra's), as W&B's agent
    program = tmp_path / "train.py"
    assert f"/usr/bin/env python3 {program} \"opt={{'lr': '<opt.lr>'}}\" " in out
    assert "opt.config.lr=<opt.config.lr>" in out
    assert os.environ.get("WANDB_RUN_ID") is None


def test_a_script_trial_gets_a_whole_gpu_where_there_are_gpus(tmp_path):
    from sweeper.engine.placement import place

    spec = _spec(tmp_path)
    on_gpus = place(spec, 4, num_cpus=16, num_gpus=2)  # nothing to probe: one GPU each
    assert (on_gpus.device, on_gpus.gpus, on_gpus.at_once) == ("cuda", 1.0, 2)
    on_cpu = place(spec, 4, num_cpus=2, num_gpus=0)
    assert (on_cpu.device, on_cpu.gpus, on_cpu.at_once) == ("cpu", 0.0, 2)
    shared = place(_spec(tmp_path, resources={"gpus": 0.5}), 4, num_cpus=16, num_gpus=1)
    assert (shared.gpus, shared.at_once) == (0.5, 2)


def test_json_values_and_dotted_names_reach_the_script_as_wandbs_agent_passes_them(
    tmp_path, monkeypatch
):
    """A spec's draw, through sweeper, against W&B's agent given what W&B's server sends
    (a nested group as one mapping, a name with dots as one flat argument)."""
    from sweeper.search.space import decode, script_config

    command = ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}", *ALL_MACROS[3:]]
    spec = spec_from_dict(
        {
            "name": "sw1", "program": "train.py", "command": command, "method": "grid",
            "parameters": {
                "optimizer": {"values": ["adam"]},
                "optimizer.config.learning_rate": {"values": [0.01]},
                "opt": {"values": [{"name": "sgd", "betas": [0.9, 0.99]}]},
                "sizes": {"values": [[32, 64]]},
                "dropout": {"values": [None]},
                "trainer": {"parameters": {"max_epochs": {"value": 2}}},
            },
        },
        "test.yaml",
    )  # fmt: skip
    drawn = {"optimizer": "adam", "optimizer.config.learning_rate": 0.01,
             "opt": '{"name": "sgd", "betas": [0.9, 0.99]}', "sizes": "[32, 64]",
             "dropout": None}  # fmt: skip
    values = {**decode(spec, drawn), "trainer.max_epochs": 2}
    server = {"optimizer": "adam", "optimizer.config.learning_rate": 0.01,
              "opt": {"name": "sgd", "betas": [0.9, 0.99]}, "sizes": [32, 64],
              "dropout": None, "trainer": {"max_epochs": 2}}  # fmt: skip
    assert script_config(spec, values) == server
    theirs = wandb_run(command, server, tmp_path / "w", monkeypatch)
    launch = plan_launch(
        spec, script_config(spec, values), study_dir=tmp_path / "w", trial_dir=tmp_path / "t",
        run_id="r1", base_env={}, watch_pid=1, grace_s=1,
    )  # fmt: skip
    assert launch.argv[3:] == theirs["argv"][3:]  # after env, interpreter and program
    assert "optimizer.config.learning_rate=0.01" in launch.argv and "dropout=None" in launch.argv
    param_file = Path(theirs["env"]["WANDB_SWEEP_PARAM_PATH"])
    assert launch.files[param_file] == param_file.read_text()
    assert (
        launch.files[param_file.with_suffix(".json")] == param_file.with_suffix(".json").read_text()
    )
