"""One swept parameter (W&B's vocabulary), and nested ``parameters`` flattened to dotted names.

A nested parameter's flat name joins its groups with dots (``optimizer.lr``); a name
written with dots (Hydra's ``optimizer.config.learning_rate``) is one flat parameter, as in
W&B. The spec keeps which names were nested (``Spec.nested_params``) to tell them apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from sweeper.spec.distributions import DEFAULTS, DEPRECATED, FINITE, NAMES, REGISTRY, deprecation

Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr]  # noqa: UP007 (a runtime alias)
Number = Union[StrictInt, StrictFloat]  # noqa: UP007 (a runtime alias)
ALL_DISTRIBUTIONS = (*NAMES, *DEPRECATED)
_FORMS = ("value", "values", "min/max")


class _Strict(BaseModel):
    """Base: unknown keys are errors, no silent type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Param(_Strict):
    """One swept parameter, in W&B's sweep-config vocabulary.

    ``value`` (a constant), ``values`` (a categorical list, with ``probabilities`` for
    categorical_w_probabilities), ``min``/``max`` (a range), or a ``distribution`` with
    its own keys (``mu``/``sigma``, ``a``/``b``, ``q``); the distribution is inferred as
    W&B does when the file names none. :mod:`sweeper.spec.distributions` holds each one.
    """

    value: JsonValue = None  # any JSON value, as W&B's
    values: list[JsonValue] | None = None
    probabilities: list[Number] | None = None
    min: Number | None = None
    max: Number | None = None
    mu: Number | None = None
    sigma: Number | None = None
    a: Number | None = None
    b: Number | None = None
    q: Annotated[Number, Field(gt=0)] | None = None
    distribution: Literal[ALL_DISTRIBUTIONS] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _holds_together(self) -> Param:
        _check(self)
        return self

    @property
    def kind(self) -> str:
        """The distribution, inferred as W&B does when the file names none."""
        if self.distribution is not None:
            return self.distribution
        given = self.model_fields_set
        if "value" in given:
            return "constant"
        if "values" in given:
            return "categorical_w_probabilities" if "probabilities" in given else "categorical"
        both_int = isinstance(self.min, int) and isinstance(self.max, int)
        return "int_uniform" if both_int else "uniform"

    @property
    def is_finite(self) -> bool:
        return self.kind in FINITE

    def arg(self, key: str) -> Any:
        """A key's value, W&B's default where the file leaves it out (mu 0, sigma 1, ...)."""
        value = getattr(self, key)
        return DEFAULTS[key] if value is None else value


def _check(p: Param) -> None:
    given = p.model_fields_set - {"distribution"}
    forms: list[str] = [f for f in ("value", "values") if f in given]
    if "min" in given or "max" in given:
        forms.append("min/max")
    if len(forms) > 1 or (not forms and p.distribution is None):
        got = ", ".join(forms) if forms else "none of them"
        if not forms and given:
            got = f"{', '.join(sorted(given))} without a distribution (e.g. distribution: normal)"
        raise ValueError(f"expected exactly one of value, values, or min and max; got {got}")
    kind = p.kind
    if kind in DEPRECATED:
        raise ValueError(f"@distribution: {deprecation(kind, p)}")
    dist = REGISTRY[kind]
    extra = [k for k in ("value", "values", "min", "max", *DEFAULTS, "probabilities") if k in given]
    extra = [k for k in extra if k not in dist.keys]
    if extra:
        takes = ", ".join(dist.keys)
        raise ValueError(f"distribution {kind} does not take {extra[0]}; it takes {takes}")
    if "values" in dist.keys and p.values is None:
        raise ValueError(f"distribution {kind} needs values")
    dist.check(p)


def flatten_params(params: Any, prefix: str = "") -> Any:
    """W&B's nested ``{name: {parameters: {...}}}`` as one flat mapping of dotted names.

    Raises ``ValueError`` ("@parameters.<path>: ...") for a malformed nesting.
    """
    if not isinstance(params, dict):
        return params
    flat: dict[str, Any] = {}
    for name, item in params.items():
        path = f"{prefix}{name}"
        if isinstance(item, dict) and "parameters" in item:
            inner = item["parameters"]
            where = f"@parameters.{nested_path(path)}"
            others = sorted(str(k) for k in item if k != "parameters")
            if others:
                raise ValueError(
                    f"{where}: a nested parameter takes only parameters, got {', '.join(others)}"
                )
            if not isinstance(inner, dict) or not inner:
                raise ValueError(f"{where}.parameters: expected a mapping of parameters")
            children = flatten_params(inner, f"{path}.")
        else:
            children = {path: item}
        for key, child in children.items():
            if key in flat:
                raise ValueError(f"@parameters.{key}: given twice (nested and as a dotted name)")
            flat[key] = child
    return flat


def nested_names(raw_params: Any) -> tuple[str, ...]:
    """The flat names of the parameters nested in ``raw_params`` (W&B's ``parameters:``
    inside a parameter), in the file's order; a name given with dots is not one of them."""
    if not isinstance(raw_params, dict):
        return ()
    flat = flatten_params(raw_params)
    return tuple(name for name in flat if name not in raw_params)


def nest_params(flat: dict[str, Any], nested: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Flat parameter blocks back in W&B's nested form (inverse of :func:`flatten_params`):
    each name in ``nested`` under its groups' ``parameters``, the others as they are."""
    out: dict[str, Any] = {}
    for name, block in flat.items():
        if name not in nested:
            out[name] = block
            continue
        *groups, leaf = name.split(".")
        node = out
        for group in groups:
            node = node.setdefault(group, {"parameters": {}})["parameters"]
        node[leaf] = block
    return out


def nested_path(flat_name: str) -> str:
    """``optimizer.lr`` as it stands in a nested file: ``optimizer.parameters.lr``."""
    return ".parameters.".join(flat_name.split("."))


def file_paths(raw_params: Any) -> dict[str, str]:
    """Each nested parameter's flat name -> its key path in the file (for error messages)."""
    if not isinstance(raw_params, dict):
        return {}
    try:
        flat = flatten_params(raw_params)
    except ValueError:
        return {}
    return {name: nested_path(name) for name in flat if name not in raw_params}
