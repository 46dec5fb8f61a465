"""``sweeper export``: the best configs of a study as runnable sweep files, with weights.

For each of the best K finished trials, a folder ``<out>/top<rank>_<trial_id>/`` holds:

- ``sweep.yaml``: a single-config sweep (every swept parameter as ``value:``, the rest of
  the saved spec unchanged, less what only held on the machine that ran it: the absolute
  data root and the Optuna mirror's place) that ``sweeper run`` retrains, on any machine
  (the data root from ``--data-dir`` or ``$SWEEPER_DATA_DIR``); its metrics head the file;
- ``metrics.json``: the trial's params and final metrics (the sidecar for scripts);
- ``state_dict.pt`` and ``model.torchscript.pt``: the weights of the trial's last
  checkpoint (the first repeat's model), when checkpoints were kept.

Reads the study folder only (no Ray); torch is imported only to convert weights.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sweeper.errors import SweeperError
from sweeper.spec import read_yaml_file, spec_from_dict
from sweeper.spec.params import flatten_params, nest_params, nested_names
from sweeper.store import BASE_COLUMNS, PARAM_PREFIX, Study, atomic_write

STATE_FILE = "state.pt"  # what the Ray trainable checkpoints (sweeper.engine.trainable)
SEARCH_KEYS = ("sampler", "run_cap", "early_terminate")  # an exported config is a grid of one
MACHINE_KEYS = ("storage",)  # the study's Optuna mirror: the retrain gets its own


@dataclass
class Exported:
    """One exported trial: where its files went."""

    rank: int
    trial_id: str
    folder: Path
    sweep: Path
    metrics: dict[str, Any]
    weights: list[Path] = field(default_factory=list)
    note: str = ""


def export_study(
    study: Study, top: int = 3, out: str | os.PathLike[str] | None = None
) -> list[Exported]:
    """Export the ``top`` best finished trials of ``study`` into ``out`` (default
    ``<study>/export``); returns what was written, best first."""
    from sweeper.report import collect, context

    if top < 1:
        raise SweeperError(f"--top: must be >= 1, got {top}")
    ctx = context(study)
    df = results(collect(study), ctx.objectives)
    if df.empty:
        raise SweeperError(
            f"{study.path}: no finished trial with a {ctx.metric}; nothing to export"
        )
    best = _best(df, ctx, top)
    raw_spec = read_yaml_file(str(study.path / "spec.yaml"))
    folder = Path(out) if out else study.path / "export"
    done = []
    for rank, row in enumerate(best.to_dict(orient="records"), start=1):
        done.append(_export_one(study, ctx, raw_spec, row, rank, folder))
    return done


def results(df: Any, objectives: Any) -> Any:
    """The rows that are results (:meth:`sweeper.spec.objectives.Objectives.is_result`)."""
    import pandas as pd

    ok = [objectives.is_result(r) for r in df.to_dict(orient="records")]
    return df[pd.Series(ok, index=df.index, dtype=bool)]


def _best(df: Any, ctx: Any, top: int) -> Any:
    """The ``top`` best results; with several objectives, the Pareto front's first ``top``
    (best first by the first objective), never a trial the front dominates."""
    import pandas as pd

    objectives = ctx.objectives
    if not objectives.multi:
        return df.sort_values(ctx.metric, ascending=not ctx.maximize).head(top)
    front = objectives.front(df.to_dict(orient="records"))
    return pd.DataFrame(front[:top], columns=df.columns)


def _export_one(
    study: Study, ctx: Any, raw_spec: dict, row: dict, rank: int, out: Path
) -> Exported:
    trial_id = str(row["trial_id"])
    folder = out / f"top{rank}_{trial_id}"
    folder.mkdir(parents=True, exist_ok=True)
    params = trial_params(ctx.spec, row)
    metrics = _metrics(row)
    info = {"study": ctx.name, "trial_id": trial_id, "rank": rank, "metric": ctx.metric,
            "goal": ctx.goal, "value": metrics.get(ctx.metric), "params": params,
            "metrics": metrics}  # fmt: skip
    if ctx.objectives.multi:  # a Pareto-front trial: each objective's goal and value
        info["objectives"] = {m.name: {"goal": m.goal, "value": metrics.get(m.name)}
                              for m in ctx.objectives.metrics}  # fmt: skip
    sweep = folder / "sweep.yaml"
    raw_spec = _code_beside(raw_spec, study.path, folder)
    atomic_write(sweep, sweep_text(raw_spec, params, info, sweep))
    atomic_write(folder / "metrics.json", json.dumps(info, indent=2) + "\n")
    item = Exported(rank, trial_id, folder, sweep, metrics)
    checkpoint = last_checkpoint(study.tune_dir, trial_id)
    if checkpoint is None:
        item.note = "no checkpoint kept (train.checkpoint: false, or the trial saved none)"
    else:
        item.weights, item.note = export_weights(ctx.spec, params, checkpoint, folder)
    return item


def _code_beside(raw_spec: dict, study_path: Path, folder: Path) -> dict:
    """The user's files the study keeps (``code/``) copied beside the exported sweep file,
    which names them there: the export runs from its own folder."""
    raw = dict(raw_spec)
    for key in ("model", "data"):
        part = raw.get(key)
        if isinstance(part, dict) and isinstance(part.get("path"), str):
            source = (study_path / part["path"]).resolve()
            atomic_write(folder / source.name, source.read_text(encoding="utf-8"))
            raw[key] = {**part, "path": source.name}
    return raw


def trial_params(spec: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The trial's swept values as the spec types them (ints stay ints, labels as written)."""
    from sweeper.search.space import received

    out = {}
    for name, param in spec.parameters.items():
        if param.kind == "constant":
            continue
        value = row.get(PARAM_PREFIX + name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if None not in (param.values or ()):  # null is one of the values: kept
                continue
            value = None
        value = value.item() if value is not None and hasattr(value, "item") else value
        value = received(param, value)  # "[1, 2]" read from the CSV -> [1, 2]
        if param.kind == "int_uniform":
            value = int(value)
        elif param.kind in ("uniform", "log_uniform_values", "q_uniform"):
            value = float(value)
        out[name] = value
    return out


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.startswith(PARAM_PREFIX) or key in BASE_COLUMNS:
            continue
        value = value.item() if hasattr(value, "item") else value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = value
    out["epochs"] = int(row.get("epochs") or 0)
    return out


def _ranked_by(info: dict[str, Any], goal: bool = True) -> str:
    """``by val_acc (maximize)``, or for several objectives ``on the Pareto front of ...``."""
    if "objectives" in info:
        goals = ", ".join(f"{k} ({v['goal']})" for k, v in info["objectives"].items())
        return f"on the Pareto front of {goals}, by {info['metric']}"
    return f"by {info['metric']} ({info['goal']})" if goal else f"by {info['metric']}"


def sweep_text(raw_spec: dict[str, Any], params: dict[str, Any], info: dict, path: Path) -> str:
    """A single-config sweep file: the saved spec with every swept parameter fixed."""
    data = json.loads(json.dumps(raw_spec))  # a deep copy of plain data
    data["name"] = f"{info['study']}_top{info['rank']}"
    data["description"] = (
        f"trial {info['trial_id']} of study {info['study']} (rank {info['rank']} "
        f"{_ranked_by(info, goal=False)}), exported by sweeper export"
    )
    data["method"] = "grid"
    for key in MACHINE_KEYS + SEARCH_KEYS:  # a grid of one; nothing tied to this machine
        data.pop(key, None)
    if isinstance(data.get("data"), dict):
        data["data"].pop("root", None)
    fixed = flatten_params(dict(data.get("parameters") or {}))  # nested names as dotted
    for name, value in params.items():
        fixed[name] = {"value": value}
    data["parameters"] = nest_params(fixed, nested_names(data.get("parameters")))
    own = data.get("model") and ("path" in data["model"] or "import" in data["model"])
    if data.get("model") and not own:  # a script trial, or a builder of the user's: no preset
        _unshadow_preset(data, str(params.get("model", data["model"]["name"])))
    spec_from_dict(json.loads(json.dumps(data)), str(path))  # must load back as a valid spec
    m = info["metrics"]
    shown = ", ".join(
        f"{k} {m[k]:.4f}" for k in (info["metric"], f"best_{info['metric']}", "test_acc", "test_loss")
        if isinstance(m.get(k), float)
    )  # fmt: skip
    header = [
        f"# Exported from study {info['study']}: trial {info['trial_id']}, rank {info['rank']} "
        f"{_ranked_by(info)}.",
        f"# Its metrics: {shown}; {m.get('epochs')} epochs, {m.get('params', '?')} parameters.",
        "# Retrain it with: sweeper run <this file> (the data root: --data-dir or "
        "$SWEEPER_DATA_DIR)",
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False)


def _unshadow_preset(data: dict[str, Any], model: str) -> None:
    """Leave out training keys that only restate TrainSpec's default where the model's
    preset sets its own (LeNet v1's StepLR): the saved spec writes every key, and a key in
    the file would override the preset that the original run used."""
    from sweeper.spec import TrainSpec
    from sweeper.trial.config import preset_train_defaults

    train = data.get("train") or {}
    for key in preset_train_defaults(model):
        field = TrainSpec.model_fields.get(key)
        if field is not None and key in train and train[key] == field.default:
            del train[key]


def last_checkpoint(tune_dir: Path, trial_id: str) -> Path | None:
    """The newest ``checkpoint_*/state.pt`` of the trial in Ray's experiment folder."""
    found = sorted(tune_dir.glob(f"*_{trial_id}_*/checkpoint_*/{STATE_FILE}"))
    return found[-1] if found else None


def export_weights(
    spec: Any, params: dict[str, Any], checkpoint: Path, folder: Path
) -> tuple[list[Path], str]:
    """Write the checkpoint's first model as a state_dict and as TorchScript.

    The model is rebuilt from the registry (``get_model`` with the trial's arguments and
    the dataset's input shape); TorchScript uses ``torch.jit.script`` and falls back to
    ``torch.jit.trace`` on a zero input for models that scripting does not take.
    """
    import torch

    model, in_shape = build_model(spec, params)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    runs = state["runs"]
    model.load_state_dict(runs[0]["model"])
    model.eval()
    state_path = folder / "state_dict.pt"
    torch.save(model.state_dict(), state_path)
    scripted, how = _torchscript(model, in_shape)
    ts_path = folder / "model.torchscript.pt"
    scripted.save(str(ts_path))
    note = f"epoch {state.get('epoch')} weights, repeat 1 of {len(runs)}; TorchScript by {how}"
    return [state_path, ts_path], note


def build_model(spec: Any, params: dict[str, Any]) -> tuple[Any, tuple[int, ...]]:
    """The trial's model, untrained, and the input shape it takes (one example)."""
    from sweeper.models import get_model
    from sweeper.trial.config import resolve_trial

    cfg = resolve_trial(spec, params)
    info = _dataset_info(spec.data)
    model = get_model(
        cfg.model, in_shape=info.in_shape, num_classes=info.num_classes, **cfg.model_args
    )
    return model, tuple(info.in_shape)


def _dataset_info(data_spec: Any) -> Any:
    import sweeper.data as data

    if hasattr(data, "dataset_info"):  # honours data.image_size
        return data.dataset_info(data_spec)
    return data.get_dataset(data_spec.name).info


def _torchscript(model: Any, in_shape: tuple[int, ...]) -> tuple[Any, str]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.script(model), "script"
        except Exception:  # noqa: BLE001 - not every model scripts; tracing covers the rest
            example = torch.zeros(1, *in_shape)
            with torch.no_grad():
                return torch.jit.trace(model, example), "trace"
