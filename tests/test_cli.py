"""The command line's shape: the table of subcommands, shared flags, --debug, usage errors."""

from __future__ import annotations

import re

import pytest

from sweeper.cli import COMMANDS, build_parser, main
from sweeper.errors import SpecError


@pytest.mark.parametrize(
    "argv", [["--debug", "check", "nope.yaml"], ["check", "nope.yaml", "--debug"]]
)
def test_debug_before_or_after_the_subcommand_shows_the_traceback(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="no such file"):
        main(argv)


def test_without_debug_an_error_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "nope.yaml"]) == 2
    assert capsys.readouterr().err == "sweeper: error: nope.yaml: no such file\n"


@pytest.mark.parametrize(
    "argv",
    [["run"], ["run", "x.yaml", "--max-trials", "many"], ["resume", "s", "--json"], ["nope"]],
    ids=["missing-file", "bad-int", "resume-json", "unknown-command"],
)
def test_a_usage_error_is_one_error_line_after_the_usage_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: sweeper")
    errors = [line for line in err.splitlines() if line.startswith("sweeper: error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n")
    assert "Traceback" not in err


def test_every_subcommand_has_help_and_a_description(capsys):
    parser = build_parser()
    for name, cmd in COMMANDS.items():
        assert cmd.help and cmd.handler.__doc__, name
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([name, "--help"])
        assert exit_.value.code == 0
        assert f"usage: sweeper {name}" in capsys.readouterr().out


def test_shared_flags_parse_the_same_everywhere():
    parser = build_parser()
    run = parser.parse_args(["run", "f.yaml", "--set", "a=1", "--max-trials", "3", "--out", "o"])
    check = parser.parse_args(["check", "f.yaml", "--set", "a=1", "--max-trials", "3"])
    for args in (run, check):
        assert (args.file, args.overrides, args.max_trials) == ("f.yaml", ["a=1"], 3)
    assert run.out == "o" and run.debug is False
    resume = parser.parse_args(["--debug", "resume", "s", "--data-dir", "d", "--wandb", "disabled"])
    assert (resume.study, resume.data_dir, resume.wandb, resume.debug) == (
        "s",
        "d",
        "disabled",
        True,
    )


def test_models_lists_the_arguments_each_model_takes(capsys):
    import json

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mlp"]["args"]["depth"] == {"accepts": "an integer >= 0", "default": 2}
    assert rows["mlp"]["args"]["activation"]["accepts"] == "one of relu, tanh, gelu, sigmoid"
    assert rows["lenet5_v2"]["args"]["channels"]["default"] == [32, 64]  # the preset's
    assert rows["lenet5_v2"]["sets"]["channels"] == [32, 64]
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    for family in ("cnn", "lenet", "mlp", "unet", "xor_mlp"):
        assert f"{family} arguments" in text
    assert "base_filters" in text and "dropout" in text
    assert main(["models", "mlp_deep"]) == 0
    assert "mlp_deep arguments" in capsys.readouterr().out
    assert main(["models", "lenet6"]) == 2
    assert "did you mean 'lenet5'?" in capsys.readouterr().err


def test_help_is_plain_and_says_what_each_output_flag_takes(capsys):
    parser = build_parser()
    helps = {}
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            parser.parse_args([name, "--help"])
        helps[name] = capsys.readouterr().out
        assert "``" not in helps[name], name  # no raw reST marks (sync's 'wandb sync')
        assert not re.search(r"--out\b", helps[name]), name  # the studies' folder is --runs
    assert "'wandb sync'" in helps["sync"]
    assert "default 3" in helps["export"] and "-o DIR, --output DIR" in helps["export"]
    assert "--runs DIR" in helps["report"] and "-o FILE, --output FILE" in helps["report"]
    assert "html: one self-contained page" in " ".join(helps["report"].split())


def test_runs_names_the_studies_folder_and_out_still_works():
    parser = build_parser()
    for name, cmd in COMMANDS.items():
        if "out" not in cmd.flags:
            continue
        argv = [name, "f.yaml" if "spec" in cmd.flags else "s"]
        assert parser.parse_args([*argv, "--runs", "r"]).out == "r"
        assert parser.parse_args([*argv, "--out", "o"]).out == "o"
        assert parser.parse_args(argv).out is None
