"""The ``sampler:`` key: one of Optuna's samplers, checked against the registry in
:mod:`sweeper.registry.samplers` (its name, its arguments; values by building it)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictStr, model_serializer, model_validator

from sweeper.errors import describe_value
from sweeper.registry.blocks import check_block
from sweeper.registry.samplers import SAMPLERS
from sweeper.spec.params import _Strict


class SamplerSpec(_Strict):
    """``sampler: tpe`` or ``sampler: {name: tpe, n_startup_trials: 5}`` (flat or under
    ``args``); saved as the bare name when it has no arguments."""

    name: StrictStr
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, raw: Any) -> Any:
        if isinstance(raw, SamplerSpec):
            return {"name": raw.name, "args": dict(raw.args)}
        if isinstance(raw, str):
            if raw not in SAMPLERS:
                raise ValueError(SAMPLERS.unknown(raw))
            return {"name": raw, "args": {}}
        if not isinstance(raw, dict):
            raise ValueError(
                f"expected a sampler's name ({', '.join(SAMPLERS)}) or a mapping with name, "
                f"got {describe_value(raw)}"
            )
        name, args = check_block(SAMPLERS, raw)
        entry = SAMPLERS.get(name)
        for key, value in args.items():
            problem = entry.arg_problem(key, value)
            if problem:
                raise ValueError(f"@{key}: {problem}")
        if args:  # built once here, so a bad value is an error of the file
            try:
                entry.build(0, args)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {str(exc).splitlines()[0]}") from None
        return {"name": name, "args": args}

    @model_serializer(mode="wrap")
    def _bare_name(self, handler: Any) -> Any:
        return handler(self) if self.args else self.name
