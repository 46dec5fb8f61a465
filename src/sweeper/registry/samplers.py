"""The sampler registry: the Optuna samplers a sweep file may name, as data (no Optuna here).

``sampler: tpe`` or ``sampler: {name: tpe, n_startup_trials: 5}`` names one entry; the
spec checks the name, the arguments and what the sampler supports (a finite space, several
objectives) against it, ``search/space.py``'s ``make_sampler`` builds from it, and the
sampler table of ``docs/sweep-file.md`` is generated from it (:func:`markdown_table`; a
test keeps the two equal). A contract test builds every entry over a small space, asks and
tells a few trials and pickles it as Ray Tune does. Adding a sampler is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweeper.registry.base import Registry
from sweeper.registry.blocks import entry_class


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler: its class, what a file may set, and what it supports.

    Attributes:
        cls: the sampler class, ``module:Name``, imported when built.
        doc: one line for the docs table.
        accepts: the class's keyword arguments a sweep file may give -> their type
            (``int``, ``number`` or ``bool``); the contract test checks the names against
            the class's signature. ``seed`` is always ``train.seed``. Deprecated arguments
            of Optuna's are left out.
        defaults: arguments sweeper gives where the file is silent.
        walks_grid: built over the grid's cells (each visited once): every swept parameter
            needs a finite set of values, and the trial count is at most the grid's size.
        several_objectives: optimises several objectives at once (a Pareto front).
        learns: its draws depend on results told so far (``impute_while_running`` feeds it).
    """

    cls: str
    doc: str
    accepts: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    walks_grid: bool = False
    several_objectives: bool = True
    learns: bool = True

    @property
    def parameters(self) -> str:
        """The parameter kinds it draws, in words: ``finite`` or ``any``."""
        return "finite" if self.walks_grid else "any"

    @property
    def class_name(self) -> str:
        return self.cls.rpartition(":")[2]

    def arg_problem(self, key: str, value: Any) -> str | None:
        """What is wrong with ``value`` for argument ``key`` (of :attr:`accepts`), or None."""
        kind = self.accepts[key]
        ok = {
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": lambda v: isinstance(v, bool),
        }[kind]
        what = {"int": "an integer", "number": "a number", "bool": "true or false"}[kind]
        return None if ok(value) else f"expected {what}, got {value!r}"

    def build(self, seed: int | None, args: dict[str, Any] | None = None, cells: Any = None) -> Any:
        """The sampler, seeded, with ``args`` over :attr:`defaults`; ``cells`` is the grid
        (parameter -> its values) for a sampler that walks one."""
        lead = {"search_space": cells} if self.walks_grid else {}
        return entry_class(self)(**lead, seed=seed, **{**self.defaults, **(args or {})})


SAMPLERS: Registry[SamplerEntry] = Registry("sampler")

_OPTUNA = "optuna.samplers"
_GA = {
    "population_size": "int",
    "mutation_prob": "number",
    "crossover_prob": "number",
    "swapping_prob": "number",
}
for _name, _entry in {
    "grid": SamplerEntry(
        f"{_OPTUNA}:GridSampler", "every cell of the grid once", walks_grid=True, learns=False
    ),
    "random": SamplerEntry(f"{_OPTUNA}:RandomSampler", "independent random draws", learns=False),
    "tpe": SamplerEntry(
        f"{_OPTUNA}:TPESampler",
        "Tree-structured Parzen Estimator",
        {
            "n_startup_trials": "int",
            "n_ei_candidates": "int",
            "multivariate": "bool",
            "group": "bool",
            "constant_liar": "bool",
        },
    ),
    "gp": SamplerEntry(
        f"{_OPTUNA}:GPSampler",
        "Gaussian-process Bayesian optimisation",
        {"n_startup_trials": "int", "deterministic_objective": "bool"},
    ),
    "cmaes": SamplerEntry(
        f"{_OPTUNA}:CmaEsSampler",
        "CMA evolution strategy (categoricals sampled independently)",
        {
            "n_startup_trials": "int",
            "popsize": "int",
            "use_separable_cma": "bool",
            "with_margin": "bool",
            "lr_adapt": "bool",
            "consider_pruned_trials": "bool",
            "warn_independent_sampling": "bool",
        },
        {"warn_independent_sampling": False},
        several_objectives=False,
    ),
    # Optuna's, picklable again (Optuna 5.1 broke it): see search/ga_samplers.py.
    "nsga2": SamplerEntry(
        "sweeper.search.ga_samplers:NSGAIISampler", "NSGA-II genetic algorithm", _GA
    ),
    "nsga3": SamplerEntry(
        "sweeper.search.ga_samplers:NSGAIIISampler",
        "NSGA-III genetic algorithm (made for many objectives)",
        _GA,
    ),
}.items():
    SAMPLERS.register(_name, _entry)


def markdown_table() -> str:
    """The sampler table of ``docs/sweep-file.md``: one row per registered sampler."""
    rows = [
        "| name | class | parameters | objectives | arguments | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in SAMPLERS.items():
        args = ", ".join(f"`{a}` ({kind})" for a, kind in entry.accepts.items()) or "none"
        objectives = "one or several" if entry.several_objectives else "one"
        rows.append(
            f"| `{name}` | `{entry.class_name}` | {entry.parameters} | {objectives} | {args} "
            f"| {entry.doc} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m sweeper.registry.samplers: the docs table
    print(markdown_table(), end="")
