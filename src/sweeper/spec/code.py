"""The ``model`` and ``data`` blocks: a registered name, or the user's own code.

``model: {name: lenet5}`` names a registered model; ``model: {path: my_models.py, name:
build_net}`` a builder in a file (the path relative to the sweep file's folder) and
``model: {import: "package.module:build_net"}`` one in an importable module. ``data`` takes
the same three forms. Nothing is imported here: the registries load the code (``plan``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StrictInt, StrictStr, model_validator

from sweeper.spec.params import _Strict

CODE_DIR = "code"  # where a study keeps its copy of the user's files


class _CodeRef(_Strict):
    """A registered ``name``, or ``path`` + ``name``, or ``import: module:function``."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    name: StrictStr
    path: StrictStr | None = None
    import_: StrictStr | None = Field(default=None, alias="import")
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _name_of_import(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or not isinstance(raw.get("import"), str):
            return raw
        target = raw["import"]
        module, sep, function = target.partition(":")
        if not sep or not module or not function.isidentifier():
            raise ValueError(f"@import: expected package.module:function, got {target!r}")
        if "path" in raw:
            raise ValueError("@path: give path (a file) or import (a module), not both")
        if raw.get("name", function) != function:
            raise ValueError(f"@name: {target!r} names {function!r}; drop name")
        return {**raw, "name": function}

    @model_validator(mode="after")
    def _function_name(self) -> _CodeRef:
        if self.path is not None and not self.name.isidentifier():
            raise ValueError(
                f"@name: expected the name of a function in {self.path}, got {self.name!r}"
            )
        return self

    @property
    def is_own(self) -> bool:
        """Whether this is the user's code (a file or a module), not a registered name."""
        return self.path is not None or self.import_ is not None

    @property
    def ref(self) -> str:
        """The registry key: the name, ``/abs/file.py:function`` or ``module:function``."""
        if self.path is not None:
            return f"{self.path}:{self.name}"
        return self.import_ or self.name

    @property
    def label(self) -> str:
        """For messages and tables: ``lenet5``, ``my_models.py:build_net``, the import."""
        if self.path is not None:
            return f"{Path(self.path).name}:{self.name}"
        return self.ref


class ModelSpec(_CodeRef):
    """A registered model (``sweeper models`` lists them), or a builder of the user's own.

    A builder takes the data's ``in_shape`` and ``num_classes`` (if its signature names
    them) and its own keyword arguments (``args``, sweepable under ``parameters`` by name),
    and returns an ``nn.Module``.
    """

    @model_validator(mode="before")
    @classmethod
    def _needs_name(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "name" not in raw and "import" not in raw:
            what = f"the builder function in {raw['path']}" if "path" in raw else "a model"
            raise ValueError(f"@name: missing required key ({what})")
        return raw


class DataSpec(_CodeRef):
    """A registered dataset (or the user's own loader), where its files are, and the split.

    ``args`` go to the dataset (``emnist``: ``split``) or to the user's function.
    """

    name: StrictStr = "fashion_mnist"
    root: StrictStr | None = None
    val_size: Annotated[StrictInt, Field(ge=1)] = 10_000
    train_size: Annotated[StrictInt, Field(ge=1)] | None = None
    test_size: Annotated[StrictInt, Field(ge=1)] | None = None
    split_seed: StrictInt = 0
    image_size: Annotated[StrictInt, Field(ge=8)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _needs_name(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "path" in raw and "name" not in raw:
            raise ValueError(
                f"@name: missing required key (the function in {raw['path']} that returns the data)"
            )
        return raw


def code_paths(spec: Any, folder: str | Path) -> Any:
    """``spec`` with the ``path`` of its own model and data made absolute from ``folder``."""
    update = {}
    for key in ("model", "data"):
        part = getattr(spec, key)
        if part is not None and part.path is not None:
            path = (Path(folder) / Path(part.path).expanduser()).resolve()
            update[key] = part.model_copy(update={"path": str(path)})
    return spec.model_copy(update=update) if update else spec


def own_files(spec: Any) -> dict[str, Path]:
    """``model``/``data`` -> the user's file each loads (empty for registered names)."""
    found = {}
    for key in ("model", "data"):
        part = getattr(spec, key)
        if part is not None and part.path is not None:
            found[key] = Path(part.path)
    return found
