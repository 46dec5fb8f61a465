"""Sweep files: parsing, validation and overrides (no torch, ray or wandb here)."""

from __future__ import annotations

from sweeper.spec.distributions import NAMES as DISTRIBUTIONS
from sweeper.spec.loader import (
    apply_overrides,
    load_spec,
    parse_yaml,
    read_yaml_file,
    spec_from_dict,
    validate_part,
)
from sweeper.spec.schema import (
    METHODS,
    SAMPLERS,
    DataSpec,
    EarlyTerminate,
    Metric,
    ModelSpec,
    Param,
    Resources,
    Spec,
    TrainSpec,
    WandbSpec,
)

__all__ = [
    "DISTRIBUTIONS",
    "METHODS",
    "SAMPLERS",
    "DataSpec",
    "EarlyTerminate",
    "Metric",
    "ModelSpec",
    "Param",
    "Resources",
    "Spec",
    "TrainSpec",
    "WandbSpec",
    "apply_overrides",
    "load_spec",
    "parse_yaml",
    "read_yaml_file",
    "spec_from_dict",
    "validate_part",
]
