"""Model arguments, fixed or swept, are checked against the registry before any build.

Issue 8's bad inputs through ``sweeper check`` in process, then a table over every
registered model: its defaults pass, a wrong-typed value of any argument fails naming it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeper.cli import main
from sweeper.errors import SpecError
from sweeper.models import get_entry, list_models
from sweeper.plan import make_plan
from sweeper.spec import spec_from_dict

ISSUE_CASES = {
    "negative_depth": (
        "parameters: {depth: {values: [-1, 5]}}\nmodel: {name: mlp}",
        "parameters.depth.values[0]: expected an integer >= 0, got -1",
    ),
    "metric_without_name": (
        "metric: {goal: maximize}\nmodel: {name: mlp}",
        "metric.name: missing required key",
    ),
    "float_width": (
        "parameters: {width: {values: [32.5, 64]}}\nmodel: {name: mlp}",
        "parameters.width.values[0]: expected an integer >= 1, got float 32.5",
    ),
    "fixed_negative_depth": (
        "model: {name: mlp, args: {depth: -1}}",
        "model.args.depth: expected an integer >= 0, got -1",
    ),
    "valuez": (
        "parameters: {width: {valuez: [32, 64]}}\nmodel: {name: mlp}",
        "parameters.width.valuez: unknown key 'valuez'; did you mean 'values'?",
    ),
}


@pytest.mark.parametrize("case", ISSUE_CASES)
def test_issue_case_is_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, expected = ISSUE_CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(f"name: {case}\n{body}\n", encoding="utf-8")
    assert main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err == f"sweeper: error: {path}: {expected}\n"
    assert "ok" not in out


# -- every registered model ----------------------------------------------------------------

DATA = {"unet": {"name": "membrane", "image_size": 64}, "xor_mlp": {"name": "xor"}}
METRIC = {"unet": "val_iou"}
# A wrong-typed value for each kind of argument; a sequence gets it as its first element.
WRONG = {"int": True, "float": "half", "bool": "yes", "str": 3}
ARGS = [(name, arg) for name in list_models() for arg in get_entry(name).arg_names]


def _spec(name: str, args: dict | None = None, parameters: dict | None = None):
    family = get_entry(name).family
    raw = {
        "name": "t",
        "metric": {"name": METRIC.get(family, "val_acc")},
        "model": {"name": name, "args": args or {}},
        "data": DATA.get(family, {"name": "fashion_mnist"}),
        "parameters": parameters or {},
    }
    return spec_from_dict(raw, "t.yaml")


def _yaml_like(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("name", list_models())
def test_defaults_pass(name: str) -> None:
    args = {k: _yaml_like(v) for k, v in get_entry(name).defaults().items()}
    assert make_plan(_spec(name, args), "t.yaml").first_params > 0


@pytest.mark.parametrize(("name", "arg"), ARGS)
def test_wrong_type_fails_naming_the_key(name: str, arg: str) -> None:
    spec = get_entry(name).arg_specs[arg]
    wrong = [WRONG[spec.kind]] if spec.sequence else WRONG[spec.kind]
    with pytest.raises(SpecError) as fixed:
        make_plan(_spec(name, {arg: wrong}), "t.yaml")
    assert fixed.value.key == f"model.args.{arg}" + ("[0]" if spec.sequence else "")
    assert fixed.value.message.startswith(f"expected {spec.element().describe()}, got ")
    if spec.sequence and not get_entry(name).defaults()[arg]:
        return  # no element to sweep (cnn_mnist has no hidden fc layers)
    swept = f"{arg}.0" if spec.sequence else arg
    with pytest.raises(SpecError) as param:
        make_plan(_spec(name, parameters={swept: {"values": [WRONG[spec.kind]]}}), "t.yaml")
    assert param.value.key == f"parameters.{swept}.values[0]"
    assert param.value.message == fixed.value.message
