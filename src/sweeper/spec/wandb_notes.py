"""What sweeper accepts although W&B's own validator rejects it: one line each for ``check``.

A user who also runs the file on W&B (``wandb sweep``) learns it before W&B refuses it;
sweeper runs it as it is (wandb/sweeps ``config/schema.json``, the validator of wandb 0.31).
"""

from __future__ import annotations

from typing import Any


def wandb_notes(spec: Any) -> list[str]:
    """One line per construct of ``spec`` that W&B's validator rejects (empty: none)."""
    given = spec.model_fields_set
    notes = []
    if "method" not in given:
        notes.append("no method: W&B requires one (sweeper uses grid)")
    if spec.metrics is not None:
        notes.append(
            "metrics: W&B takes several metrics only with method: custom (a Launch scheduler)"
        )
    if not spec.parameters:
        notes.append("no parameters: W&B requires at least one")
    for name, param in spec.parameters.items():
        if spec.sampler_name == "grid" and param.kind == "categorical_w_probabilities":
            notes.append(
                f"parameters.{name}: W&B's grid refuses probabilities "
                "(sweeper's grid walks each value once)"
            )
    if spec.metric.impute_while_running is True:
        notes.append(
            "metric.impute_while_running: W&B takes latest, best, worst or false, not true"
        )
    et = spec.early_terminate
    if et is not None and et.min_iter is None and (et.max_iter is None or et.s is None):
        notes.append("early_terminate: W&B requires min_iter, or max_iter and s")
    return notes
