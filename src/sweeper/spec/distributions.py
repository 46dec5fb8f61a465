"""W&B's parameter distributions: one registry entry each.

An entry says which keys a parameter of that distribution takes, what must hold of them,
the Optuna distribution a sampler draws from, how a draw becomes the value a trial
receives, and (for a grid) its finite set of values. Optuna and scipy are imported only
when a distribution is built or decoded, so the spec stays free of them.

Shaped or unbounded priors (``normal``, ``log_normal``, ``beta`` and their ``q_`` forms,
and ``categorical_w_probabilities``) are drawn as a quantile ``u`` in
``[QUANTILE_EPS, 1 - QUANTILE_EPS]`` and mapped through the inverse CDF, so every sampler
(random, TPE, GP, CMA-ES) sees a bounded float; a normal prior is therefore truncated at
about 4.75 standard deviations. ``q_`` forms round as W&B does: ``round(x / q) * q``, an
integer when ``q`` is an integer.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweeper.spec.values import choices, from_choice, identity

QUANTILE_EPS = 1e-6
# W&B's defaults for keys a file may leave out.
DEFAULTS: dict[str, Any] = {"mu": 0.0, "sigma": 1.0, "a": 1.0, "b": 1.0, "q": 1.0}
# W&B's deprecated forms (min/max are base-e exponents) and their replacements.
DEPRECATED = {
    "log_uniform": "log_uniform_values",
    "q_log_uniform": "q_log_uniform_values",
    "inv_log_uniform": "inv_log_uniform_values",
}
MACRO_NAMES = (
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_hyphens",
    "args_no_equals",
    "args_no_boolean_flags",
    "args_json",
    "args_json_file",
    "args_append_hydra",  # W&B 0.31's create_sweep_command_args fills it in too
    "args_override_hydra",
)


def _nothing(param: Any) -> None:
    return None


@dataclass(frozen=True)
class Distribution:
    """One distribution of W&B's sweep format.

    Attributes:
        name: W&B's name (``distribution: <name>``).
        keys: the keys a parameter takes besides ``distribution``.
        draw: param -> the Optuna distribution a sampler draws from (None: not drawn).
        decode: (param, draw) -> the value a trial receives; None: the draw itself.
        values: param -> every value, in order, for a distribution with a finite set.
        check: raises ``ValueError`` when the parameter's keys do not hold together.
    """

    name: str
    keys: tuple[str, ...]
    draw: Callable[[Any], Any]
    decode: Callable[[Any, Any], Any] | None = None
    values: Callable[[Any], list[Any]] | None = None
    check: Callable[[Any], None] = _nothing

    @property
    def finite(self) -> bool:
        return self.values is not None

    def recorded(self, param: Any) -> Any:
        """An Optuna distribution holding every value a trial can receive (the mirror's)."""
        import optuna.distributions as od

        drawn = self.draw(param)
        if self.decode is None:
            return drawn
        if self.values is not None:
            return od.CategoricalDistribution(choices(self.values(param)))
        low, high = self.decode(param, drawn.low), self.decode(param, drawn.high)
        return od.FloatDistribution(float(low), float(high))  # decoding is monotone


REGISTRY: dict[str, Distribution] = {}


def register(dist: Distribution) -> None:
    if dist.name in REGISTRY:
        raise ValueError(f"distribution {dist.name!r} is registered twice")
    REGISTRY[dist.name] = dist


# -- checks -------------------------------------------------------------------------------


def _values(p: Any) -> None:
    if not p.values:
        raise ValueError("@values: must not be empty")
    seen = [identity(v) for v in p.values]
    dups = sorted({s for s in seen if seen.count(s) > 1})
    if dups:
        raise ValueError(f"@values: must be distinct, got {', '.join(dups)} more than once")


def _probabilities(p: Any) -> None:
    _values(p)
    probs = p.probabilities or []
    if len(probs) != len(p.values):
        raise ValueError(
            f"@probabilities: expected one per value ({len(p.values)}), got {len(probs)}"
        )
    if any(not math.isfinite(x) or x < 0 for x in probs):
        raise ValueError(f"@probabilities: must be numbers >= 0, got {probs}")
    if not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
        raise ValueError(f"@probabilities: must sum to 1, got {probs} (sum {sum(probs):g})")


def _range(p: Any) -> None:
    lo, hi = p.min, p.max
    if lo is None or hi is None:
        missing = "min" if lo is None else "max"
        raise ValueError(f"{missing} is missing: a range needs both min and max")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"min and max must be finite, got min={lo}, max={hi}")
    if lo >= hi:
        raise ValueError(f"min < max must hold, got min={lo}, max={hi}")


def _int_range(p: Any) -> None:
    _range(p)
    if not (isinstance(p.min, int) and isinstance(p.max, int)):
        raise ValueError(f"int_uniform needs integer min and max, got min={p.min}, max={p.max}")


def _log_range(p: Any) -> None:
    _range(p)
    if p.min <= 0:
        raise ValueError(f"{p.kind} needs min > 0, got min={p.min}")


def _q_range(p: Any) -> None:
    _range(p)
    q = p.arg("q")
    if q > p.max - p.min:
        raise ValueError(f"q must be <= max - min, got q={q}, max - min={p.max - p.min}")


def _shape(*keys: str) -> Callable[[Any], None]:
    def check(p: Any) -> None:
        for key in keys:
            value = p.arg(key)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"@{key}: must be > 0, got {value}")
        if p.mu is not None and not math.isfinite(p.mu):
            raise ValueError(f"@mu: must be finite, got {p.mu}")

    return check


# -- draws and decodings --------------------------------------------------------------------


def quantise(x: float, q: float) -> Any:
    """W&B's rounding to a multiple of ``q``: an int for an integer ``q``."""
    r = round(float(x) / q) * q
    return int(r) if isinstance(q, int) else float(f"{r:.12g}")


def q_uniform_values(p: Any) -> list[float]:
    lo, hi, q = float(p.min), float(p.max), float(p.arg("q"))
    n = int(math.floor((hi - lo) / q + 1e-9)) + 1
    return [round(lo + i * q, 12) for i in range(n)]


def _categorical(p: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    return CategoricalDistribution(choices(p.values))


def _ints(p: Any) -> Any:
    from optuna.distributions import IntDistribution

    return IntDistribution(int(p.min), int(p.max))


def _floats(log: bool = False) -> Callable[[Any], Any]:
    def draw(p: Any) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(float(p.min), float(p.max), log=log)

    return draw


def _q_steps(p: Any) -> Any:
    from optuna.distributions import FloatDistribution

    values = q_uniform_values(p)
    return FloatDistribution(values[0], values[-1], step=float(p.arg("q")))


def _quantile(p: Any) -> Any:
    from optuna.distributions import FloatDistribution

    return FloatDistribution(QUANTILE_EPS, 1 - QUANTILE_EPS)


def _chosen(p: Any, choice: Any) -> Any:
    """The value a categorical choice stands for (its JSON text, for a list or mapping)."""
    return from_choice(p.values, choice)


def _pick(p: Any, u: float) -> Any:
    """The value whose cumulative probability first exceeds ``u`` (W&B's ppf)."""
    total = 0.0
    for value, prob in zip(p.values, p.probabilities, strict=True):
        total += prob
        if u < total:
            return copy.deepcopy(value)
    return copy.deepcopy(p.values[-1])


def _ppf(name: str) -> Callable[[Any, float], float]:
    def ppf(p: Any, u: float) -> float:
        from scipy import stats

        if name == "beta":
            return float(stats.beta.ppf(u, a=p.arg("a"), b=p.arg("b")))
        z = float(stats.norm.ppf(u, loc=p.arg("mu"), scale=p.arg("sigma")))
        return math.exp(z) if name == "log_normal" else z

    return ppf


def _q(decode: Callable[[Any, float], float] | None) -> Callable[[Any, float], Any]:
    def quantised(p: Any, x: float) -> Any:
        return quantise(decode(p, x) if decode else x, p.arg("q"))

    return quantised


def _constant(p: Any) -> None:
    return None


_RANGE = ("min", "max")
_NORMAL = ("mu", "sigma")
for _dist in (
    Distribution("constant", ("value",), _constant, values=lambda p: [p.value]),
    Distribution("categorical", ("values",), _categorical, decode=_chosen,
                 values=lambda p: list(p.values), check=_values),
    Distribution("categorical_w_probabilities", ("values", "probabilities"), _quantile,
                 decode=_pick, values=lambda p: list(p.values), check=_probabilities),
    Distribution("int_uniform", _RANGE, _ints,
                 values=lambda p: list(range(int(p.min), int(p.max) + 1)), check=_int_range),
    Distribution("uniform", _RANGE, _floats(), check=_range),
    Distribution("q_uniform", (*_RANGE, "q"), _q_steps, values=q_uniform_values,
                 check=_q_range),
    Distribution("log_uniform_values", _RANGE, _floats(log=True), check=_log_range),
    # 1/x log-uniform on [1/max, 1/min] is x log-uniform on [min, max]: the same draw.
    Distribution("inv_log_uniform_values", _RANGE, _floats(log=True), check=_log_range),
    Distribution("q_log_uniform_values", (*_RANGE, "q"), _floats(log=True), decode=_q(None),
                 check=_log_range),
    Distribution("normal", _NORMAL, _quantile, decode=_ppf("normal"), check=_shape("sigma")),
    Distribution("q_normal", (*_NORMAL, "q"), _quantile, decode=_q(_ppf("normal")),
                 check=_shape("sigma")),
    Distribution("log_normal", _NORMAL, _quantile, decode=_ppf("log_normal"),
                 check=_shape("sigma")),
    Distribution("q_log_normal", (*_NORMAL, "q"), _quantile, decode=_q(_ppf("log_normal")),
                 check=_shape("sigma")),
    Distribution("beta", ("a", "b"), _quantile, decode=_ppf("beta"), check=_shape("a", "b")),
    Distribution("q_beta", ("a", "b", "q"), _quantile, decode=_q(_ppf("beta")),
                 check=_shape("a", "b")),
):  # fmt: skip
    register(_dist)

NAMES = tuple(REGISTRY)
FINITE = tuple(n for n, d in REGISTRY.items() if d.finite)


def deprecation(kind: str, p: Any) -> str:
    """W&B's deprecated exponent forms: the ``*_values`` form with the converted bounds."""
    new = DEPRECATED[kind]
    if p.min is None or p.max is None:
        return f"{kind} takes base-e exponents and is deprecated; use distribution: {new}"
    lo, hi = math.exp(p.min), math.exp(p.max)
    if kind == "inv_log_uniform":
        lo, hi = math.exp(-p.max), math.exp(-p.min)
    return (
        f"{kind} with min={p.min:g}, max={p.max:g} takes exponents; "
        f"use distribution: {new} with min: {lo:.4g}, max: {hi:.4g}"
    )
