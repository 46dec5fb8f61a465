"""The blocks that stop trials early: W&B's ``early_terminate`` (hyperband, run as ASHA),
sweeper's ``scheduler:`` (Ray Tune's schedulers) and ``pruner:`` (Optuna's pruners), each
checked against the registry in :mod:`sweeper.registry.schedulers`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, model_validator

from sweeper.registry.schedulers import PRUNERS, SCHEDULERS, build_pruner, check_block
from sweeper.spec.params import Number, _Strict


class EarlyTerminate(_Strict):
    """W&B's ``early_terminate: {type: hyperband}``; runs as Ray Tune's ASHA scheduler.

    W&B's two forms: ``min_iter`` (rungs at min_iter * eta^k), or ``max_iter`` and ``s``
    (rungs at max_iter / eta^k for k = 1..s, so the first is max_iter / eta^s). ASHA's
    grace period is that first rung, its ``max_t`` ``max_iter`` (``train.epochs`` when the
    file gives none), its reduction factor ``eta``. ``strict: true`` (W&B's default): a rung
    compares each trial's value at the rung; ``strict: false``: its best value so far.
    """

    type: Literal["hyperband"] = "hyperband"
    min_iter: Annotated[StrictInt, Field(ge=1)] | None = None
    max_iter: Annotated[StrictInt, Field(ge=1)] | None = None
    s: Annotated[StrictInt, Field(ge=1)] | None = None
    eta: Annotated[Number, Field(gt=1)] = 3
    strict: StrictBool = True

    @model_validator(mode="after")
    def _one_form(self) -> EarlyTerminate:
        if self.s is not None and self.max_iter is None:
            raise ValueError("@s: s counts rungs back from max_iter; set max_iter too")
        if self.s is not None and self.min_iter is not None:
            raise ValueError("@s: give min_iter, or max_iter and s, not both")
        # max_iter is set (checked above)
        if self.s is not None and self.max_iter < self.eta:  # type: ignore[operator]
            raise ValueError(
                f"@max_iter: no rung: max_iter / eta must be >= 1, "
                f"got max_iter={self.max_iter}, eta={self.eta}"
            )
        return self

    @property
    def grace_period(self) -> int:
        """The first rung, in epochs."""
        if self.s is None or self.max_iter is None:
            return self.min_iter or 1
        band = float(self.max_iter)
        first = self.max_iter
        for _ in range(self.s):  # W&B's bands: max_iter / eta^k while >= 1
            band /= self.eta
            if band < 1:
                break
            first = int(band)
        return first

    def max_t(self, epochs: int) -> int:
        """The last rung's bound: ``max_iter``, else the trials' planned epochs."""
        return self.max_iter or epochs


class SchedulerSpec(_Strict):
    """``scheduler: {name, ...args}``: one of Ray Tune's schedulers (:data:`SCHEDULERS`);
    its arguments are checked against the registry (values by the class, when built)."""

    name: StrictStr
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, raw: Any) -> Any:
        name, args = check_block(SCHEDULERS, raw)
        return {"name": name, "args": args}


class PrunerSpec(_Strict):
    """``pruner: {name, ...args}``: one of Optuna's pruners (:data:`PRUNERS`), built here
    once so a bad value is an error of the file, not of a running study."""

    name: StrictStr
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, raw: Any) -> Any:
        name, args = check_block(PRUNERS, raw)
        if "wrapped" in args and args["wrapped"] is not None:
            inner = PrunerSpec.model_validate(args["wrapped"])
            args["wrapped"] = {"name": inner.name, "args": inner.args}
        try:
            build_pruner(name, args)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {str(exc).splitlines()[0]}") from None
        return {"name": name, "args": args}
