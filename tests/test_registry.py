"""The one registry type every plug-in kind uses: duplicates raise, unknown names list the
valid ones with the closest offered, and every registry is one of it."""

from __future__ import annotations

import pytest

from sweeper.registry import Registry, UnknownNameError


def _colours() -> Registry[int]:
    table: Registry[int] = Registry("colour")
    for i, name in enumerate(("red", "green", "blue")):
        table.register(name, i)
    return table


def test_register_get_names_iteration_and_membership() -> None:
    table = _colours()
    assert table.get("green") == 1 and table["blue"] == 2
    assert table.names() == ["red", "green", "blue"] == list(table)  # registration order
    assert table.items() == [("red", 0), ("green", 1), ("blue", 2)]
    assert "red" in table and "pink" not in table and ["unhashable"] not in table
    assert len(table) == 3


def test_a_sorted_registry_lists_names_sorted() -> None:
    table: Registry[int] = Registry("colour", sort=True)
    for name in ("red", "green", "blue"):
        table.register(name, 0)
    assert table.names() == ["blue", "green", "red"]
    with pytest.raises(UnknownNameError, match="expected one of blue, green, red$"):
        table.get("zzz")


def test_a_duplicate_name_raises_and_keeps_the_first() -> None:
    table = _colours()
    with pytest.raises(ValueError, match="^colour 'red' is already registered$"):
        table.register("red", 9)
    assert table.get("red") == 0


def test_an_unknown_name_lists_the_valid_ones_and_offers_the_closest() -> None:
    table = _colours()
    with pytest.raises(UnknownNameError) as err:
        table.get("gren")
    assert str(err.value) == (
        "unknown colour 'gren'; expected one of red, green, blue; did you mean 'green'?"
    )
    assert table.unknown("Blue").endswith("did you mean 'blue'?")  # case is forgiven
    assert table.unknown("purple") == "unknown colour 'purple'; expected one of red, green, blue"
    with pytest.raises(UnknownNameError):
        table.get(["unhashable"])  # type: ignore[arg-type]


def test_the_error_class_and_cutoff_are_the_registrys() -> None:
    class ColourError(Exception):
        pass

    table: Registry[int] = Registry("colour", error=ColourError, cutoff=0.99)
    table.register("green", 0)
    with pytest.raises(ColourError, match="^unknown colour 'gren'; expected one of green$"):
        table.get("gren")


def test_a_copy_takes_new_names_the_original_does_not() -> None:
    table = _colours()
    clone = table.copy()
    clone.register("pink", 3)
    assert "pink" in clone and "pink" not in table and clone.kind == "colour"


def test_every_plug_in_kind_is_a_registry() -> None:
    from sweeper.data._api import _DATASETS
    from sweeper.models._api import _MODELS
    from sweeper.registry.optimizers import OPTIMIZERS
    from sweeper.registry.samplers import SAMPLERS
    from sweeper.registry.schedulers import PRUNERS, SCHEDULERS

    tables = [_MODELS, _DATASETS, OPTIMIZERS, SAMPLERS, SCHEDULERS, PRUNERS]
    assert all(isinstance(t, Registry) for t in tables)
    kinds = [t.kind for t in tables]
    assert kinds == ["model", "dataset", "optimizer", "sampler", "scheduler", "pruner"]


def test_registering_a_taken_model_or_dataset_name_raises() -> None:
    from sweeper.data import DatasetInfo, register_dataset
    from sweeper.models import register_model

    def build(*, in_shape: tuple[int, ...] = (1,), num_classes: int = 2) -> None:
        """A builder that is never built."""

    with pytest.raises(ValueError, match="model 'mlp' is already registered"):
        register_model("mlp")(build)
    with pytest.raises(ValueError, match="dataset 'xor' is already registered"):
        register_dataset(DatasetInfo("xor", (2,), 2))(lambda spec, root: None)
