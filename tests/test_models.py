"""The model registry's contract: every registered name builds, runs forward and backward.

The contract tests are parametrised over ``list_models()``, so a new family or preset is
tested the moment it registers. Seed-specific checks (exact parameter counts) follow.
"""

from __future__ import annotations

import pytest
import torch

from sweeper.models import (
    ArgSpec,
    UnknownModelError,
    check_model_args,
    count_params,
    get_entry,
    get_model,
    list_models,
    register_model,
)

BATCH = 2  # batch norm in training mode needs more than one example
SEGMENTATION_FAMILIES = {"unet"}

pytestmark = pytest.mark.usefixtures("seeded")  # every test from the same weights


def _build(name: str, **args):
    in_shape, num_classes = get_entry(name).default_input
    return get_model(name, in_shape=in_shape, num_classes=num_classes, **args)


def _expected_shape(name: str) -> tuple[int, ...]:
    in_shape, num_classes = get_entry(name).default_input
    if get_entry(name).family in SEGMENTATION_FAMILIES:
        return (BATCH, num_classes, *in_shape[1:])
    return (BATCH, num_classes)


# -- the contract, for every registered name ---------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    model = _build(name).train()
    in_shape, _ = get_entry(name).default_input
    out = model(torch.randn(BATCH, *in_shape))
    assert isinstance(out, torch.Tensor)
    assert tuple(out.shape) == _expected_shape(name)
    assert torch.isfinite(out).all()
    # Auxiliary heads (LeNet) only get gradients through an auxiliary loss.
    loss = out.square().mean() + sum(a.square().mean() for a in getattr(model, "aux_logits", []))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"


@pytest.mark.parametrize("name", list_models())
def test_eval_mode_output(name: str) -> None:
    model = _build(name).eval()
    in_shape, _ = get_entry(name).default_input
    with torch.no_grad():
        out = model(torch.randn(BATCH, *in_shape))
    assert isinstance(out, torch.Tensor)
    assert tuple(out.shape) == _expected_shape(name)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_entry_is_consistent(name: str) -> None:
    entry = get_entry(name)
    assert count_params(_build(name)) > 0
    assert entry.doc, f"{name} has no description for `sweeper models`"
    assert set(entry.preset) <= set(entry.arg_names)
    assert not {"in_shape", "num_classes"} & set(entry.arg_names)


# -- seed facts ---------------------------------------------------------------------------

LENET_PARAMS = {  # lenet-variants seed: torchinfo totals, aux heads included
    "lenet5": 77_486,
    "lenet5_v1": 77_486,
    "lenet5_v2": 333_970,
    "lenet5_v3": 480_586,
    "lenet5_v4": 481_458,
}


@pytest.mark.parametrize(("name", "expected"), LENET_PARAMS.items())
def test_lenet_counts_match_seed(name: str, expected: int) -> None:
    assert count_params(get_model(name, in_shape=(1, 28, 28), num_classes=10)) == expected


def test_lenet_aux_logits_left_on_model() -> None:
    model = get_model("lenet5", in_shape=(1, 28, 28), num_classes=10).eval()
    out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    assert [tuple(a.shape) for a in model.aux_logits] == [(3, 10), (3, 10)]
    plain = get_model("lenet", in_shape=(1, 28, 28), num_classes=10)
    plain(torch.randn(3, 1, 28, 28))
    assert plain.aux_logits == []


def test_lenet_step_lr_from_variant_1_onwards() -> None:
    assert get_entry("lenet5").train == {}
    for name in ("lenet5_v1", "lenet5_v2", "lenet5_v3", "lenet5_v4"):
        assert get_entry(name).train == {"lr_schedule": "step", "lr_step_size": 5, "lr_gamma": 0.5}
    # Each entry owns its defaults: changing one leaves the others alone.
    get_entry("lenet5_v1").train["lr_gamma"] = 0.1
    try:
        assert get_entry("lenet5_v2").train["lr_gamma"] == 0.5
    finally:
        get_entry("lenet5_v1").train["lr_gamma"] = 0.5


def test_lenet_sizes_follow_the_input() -> None:
    model = get_model("lenet5_v4", in_shape=(3, 32, 32), num_classes=7)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="too small"):
        get_model("lenet5", in_shape=(1, 8, 8), num_classes=10)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cnn_small", 421_642), ("cnn_bn", 858_506), ("cnn_mnist", 12_810)],
)
def test_cnn_counts_match_seeds(name: str, expected: int) -> None:
    assert count_params(get_model(name, in_shape=(1, 28, 28), num_classes=10)) == expected


def test_mlp_depth5_width128() -> None:
    model = get_model("mlp", in_shape=(1, 28, 28), num_classes=10, depth=5, width=128)
    assert count_params(model) == 167_818


@pytest.mark.parametrize("depth", range(4))
@pytest.mark.parametrize("width", range(1, 4))
def test_xor_mlp_counts(depth: int, width: int) -> None:
    # The seed's count (one output logit) plus width + 1 for the second logit.
    seed = 3 if depth == 0 else 3 * width + (depth - 1) * (width * width + width) + width + 1
    model = get_model("xor_mlp", in_shape=(2,), num_classes=2, depth=depth, width=width)
    extra = 2 + 1 if depth == 0 else width + 1
    assert count_params(model) == seed + extra


def test_unet_shape_64() -> None:
    model = get_model("unet", in_shape=(1, 64, 64), num_classes=1)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_unet_needs_divisible_size() -> None:
    with pytest.raises(ValueError, match=r"divisible by 2\*\*4 = 16, got 60x64"):
        get_model("unet", in_shape=(1, 60, 64), num_classes=1)
    model = get_model("unet", in_shape=(1, 64, 64), num_classes=1, depth=2)
    with pytest.raises(ValueError, match="divisible by 2"):
        model(torch.randn(1, 1, 30, 32))


def test_default_inputs() -> None:
    assert get_entry("unet").default_input == ((1, 64, 64), 1)
    assert get_entry("xor_mlp").default_input == ((2,), 2)
    assert get_entry("lenet5").default_input == ((1, 28, 28), 10)


# -- unknown names fail loudly -------------------------------------------------------------


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(UnknownModelError) as err:
        get_model("lenet6", in_shape=(1, 28, 28), num_classes=10)
    message = str(err.value)
    assert "lenet6" in message
    for name in list_models():
        assert name in message


def test_unknown_argument_is_an_error() -> None:
    with pytest.raises(UnknownModelError, match="does not take channel"):
        check_model_args("lenet5", {"channel": (6, 16)})
    with pytest.raises(UnknownModelError):
        get_model("unet", in_shape=(1, 64, 64), num_classes=1, filters=8)


# -- argument specs: types from the annotations, bounds and choices as data ----------------

# A value of the wrong type for each kind of argument (YAML's true is no integer).
WRONG = {"int": True, "float": "half", "bool": "yes", "str": 3}


@pytest.mark.parametrize("name", list_models())
def test_every_argument_has_a_spec_and_the_defaults_pass(name: str) -> None:
    entry = get_entry(name)
    assert set(entry.arg_specs) == set(entry.arg_names)
    for arg, value in entry.defaults().items():
        assert entry.arg_problem(arg, value) is None, (name, arg, value)


@pytest.mark.parametrize("name", list_models())
def test_every_argument_rejects_a_wrong_type(name: str) -> None:
    entry = get_entry(name)
    for arg, spec in entry.arg_specs.items():
        wrong = [WRONG[spec.kind]] if spec.sequence else WRONG[spec.kind]
        where, message = entry.arg_problem(arg, wrong) or ("", "")
        assert message.startswith(f"expected {spec.element().describe()}, got "), (arg, message)
        assert where == ("[0]" if spec.sequence else "")
        if spec.sequence:
            assert entry.arg_problem(arg, "abc") == (
                "",
                f"expected {spec.describe()}, got a string 'abc'",
            )


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (ArgSpec("int", bounds=(0, None)), -1, "expected an integer >= 0, got -1"),
        (ArgSpec("int"), 32.5, "expected an integer, got float 32.5"),
        (ArgSpec("int"), True, "expected an integer, got a boolean true"),
        (ArgSpec("float", bounds=(0.0, 1.0)), 1.5, "expected a number in [0.0, 1.0], got 1.5"),
        (ArgSpec("float", bounds=(0.0, 1.0)), float("nan"), "expected a number in"),
        (ArgSpec("float", bounds=(None, 2)), 3, "expected a number <= 2, got 3"),
        (ArgSpec("bool"), 1, "expected true or false, got int 1"),
        (ArgSpec("str", choices=("relu", "tanh")), "rellu", "did you mean 'relu'?"),
    ],
)
def test_arg_spec_messages(spec: ArgSpec, value: object, message: str) -> None:
    assert message in spec.problem(value)[1]


def test_arg_spec_accepts() -> None:
    assert ArgSpec("float", bounds=(0.0, 1.0)).problem(0) is None  # dropout: 0
    assert ArgSpec("int", sequence=True, bounds=(1, None)).problem([6, 16]) is None
    assert ArgSpec("int", sequence=True).problem((1, 0, True)) == (
        "[2]",
        "expected an integer, got a boolean true",
    )


def test_the_seed_bounds() -> None:
    mlp, lenet, unet = get_entry("mlp"), get_entry("lenet5"), get_entry("unet")
    assert mlp.arg_specs["depth"].bounds == (0, None)
    assert mlp.arg_specs["activation"].choices == ("relu", "tanh", "gelu", "sigmoid")
    assert lenet.arg_specs["channels"] == ArgSpec("int", sequence=True, bounds=(1, None))
    assert unet.arg_specs["depth"].bounds == (1, None)
    assert get_entry("cnn").arg_specs["padding"].choices == ("same", "valid")


def _builder(*, in_shape=(1,), num_classes=2, depth: int = 1, act: str = "relu"):
    """A builder that is never built."""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bounds": {"dept": (0, None)}}, "takes no argument dept"),
        ({"bounds": {"act": (0, None)}}, "bounds are for numbers"),
        ({"choices": {"depth": ("a",)}}, "choices are for strings"),
        ({"presets": {"_t_bad": {"depth": -1}}, "bounds": {"depth": (0, None)}}, "depth: expected"),
    ],
)
def test_register_model_rejects_bad_limits(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        register_model("_t_family", **kwargs)(_builder)
    assert "_t_family" not in list_models()  # nothing half-registered


def test_register_model_needs_annotations() -> None:
    def untyped(*, in_shape=(1,), num_classes=2, depth=1):
        """No annotation."""

    def odd(*, in_shape=(1,), num_classes=2, depth: dict | None = None):
        """An annotation with no check."""

    with pytest.raises(ValueError, match="depth has no annotation"):
        register_model("_t_untyped")(untyped)
    with pytest.raises(ValueError, match="expected int, float, bool, str"):
        register_model("_t_odd")(odd)
