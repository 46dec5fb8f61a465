"""Sweep files to :class:`Spec`: safe YAML, ``--set`` overrides, one-line errors."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from sweeper.errors import SpecError, describe_value
from sweeper.spec.params import file_paths
from sweeper.spec.schema import Spec
from sweeper.suggest import did_you_mean


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a plain key, got {describe_value(key)}", key_node.start_mark
            )
        if key in first_line:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first given on line {first_line[key]})",
                key_node.start_mark,
            )
        first_line[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML safely; a syntax error becomes a one-line :class:`SpecError` with its line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "'\\t'" in problem:  # PyYAML: "found character '\t' that cannot start any token"
            problem = "found a tab character; YAML indents and separates with spaces only"
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise SpecError(source, "", f"{where}: invalid YAML: {problem}") from None


def read_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing or unreadable file is a :class:`SpecError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), "", "no such file") from None
    except IsADirectoryError:
        raise SpecError(str(path), "", "expected a YAML file, got a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), "", f"cannot read: {exc}") from None
    return parse_yaml(text, str(path))


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``raw``."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise SpecError("--set", item, "expected key.path=value, e.g. train.epochs=1")
        value = parse_yaml(text, f"--set {key}") if text.strip() else None
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise SpecError(source, prefix, f"--set {key}: {prefix} is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def load_spec(
    path: str | Path, overrides: list[str] | None = None, name: str | None = None
) -> Spec:
    """Read a sweep file, apply overrides, and validate it into a :class:`Spec`."""
    raw = read_yaml_file(path)
    return spec_from_dict(raw, str(path), overrides or [], name=name)


def spec_from_dict(
    raw: Any, source: str, overrides: list[str] | None = None, name: str | None = None
) -> Spec:
    """Validate a parsed mapping into a :class:`Spec`; errors name ``source`` and the key."""
    if raw is None:
        raise SpecError(source, "", "the file is empty; expected a mapping with name, model, ...")
    if not isinstance(raw, dict):
        raise SpecError(
            source, "", f"expected a mapping at the top level, got {describe_value(raw)}"
        )
    raw = apply_overrides(raw, overrides or [], source)
    if name is not None:
        raw["name"] = name
    elif "name" not in raw:
        raw["name"] = default_name(source)
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        err = _to_spec_error(exc, source, paths=file_paths(raw.get("parameters")))
        raise _from_override(err, overrides or []) from None


def default_name(source: str) -> str:
    """A file's stem as a study name (W&B's ``name`` is optional): ``my sweep.yaml`` ->
    ``my_sweep``."""
    stem = Path(source).stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("_.-")[:100]
    return name or "sweep"


def _from_override(err: SpecError, overrides: list[str]) -> SpecError:
    """Say so when the offending value came from ``--set``, not from the file."""
    for item in reversed(overrides):
        key = item.partition("=")[0].strip()
        if err.key == key or err.key.startswith((f"{key}.", f"{key}[")):
            return SpecError(err.source, err.key, f"{err.message} (from --set {item})")
    return err


def validate_part(model: type[BaseModel], data: Any, source: str, prefix: str) -> BaseModel:
    """Validate ``data`` as ``model``, reporting errors under the key path ``prefix``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _to_spec_error(exc, source, prefix) from None


_EXPECTED = {
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "missing required key",
}


_TYPE_WORDS = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
}


def _to_spec_error(
    exc: ValidationError, source: str, prefix: str = "", paths: dict[str, str] | None = None
) -> SpecError:
    """Turn pydantic's first error into one line: ``source: key.path: message``.

    ``paths`` maps a nested parameter's flat name to its key path in the file.
    """
    err = _first_error(exc)
    loc = _loc(err)
    if paths and len(loc) > 1 and loc[0] == "parameters" and loc[1] in paths:
        loc = ["parameters", paths[loc[1]], *loc[2:]]
    if prefix:
        loc = [prefix, *loc]
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith("@"):
        sub, _, msg = msg[1:].partition(": ")
        loc = [*loc, sub]
    key = ".".join(loc)
    return SpecError(source, key, _message(err, msg, loc))


def _loc(err: Mapping[str, Any]) -> list[str]:
    """The key path, union branches dropped, list indices as ``values[0]``."""
    loc: list[str] = []
    for part in err["loc"]:
        if isinstance(part, int) and loc:
            loc[-1] += f"[{part}]"
        elif not _is_union_branch(part):
            loc.append(str(part))
    return loc


def _first_error(exc: ValidationError) -> Mapping[str, Any]:
    """Prefer the most specific error; unions report one error per branch.

    When every branch of a union of scalars failed on its type, the errors merge into
    one that names all the accepted types ("expected a number", not "an integer").
    """
    errors = exc.errors()
    for err in errors:
        if err["type"] not in _TYPE_WORDS:
            return err
    first = errors[0]
    kinds = [e["type"] for e in errors if _loc(e) == _loc(first)]
    words = [_TYPE_WORDS[k] for k in _TYPE_WORDS if k in kinds]
    if len(words) < 2:
        return first
    if "a number" in words:  # an integer is a number too
        words.remove("an integer")
    expected = words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" or {words[-1]}"
    return {**first, "type": "union_type", "msg": f"expected {expected}"}


def _is_union_branch(part: Any) -> bool:
    return isinstance(part, str) and (
        part.startswith(("function-", "constrained-"))
        or part in ("bool", "int", "float", "str", "list[...]")
        or part.startswith("literal[")
    )


def _message(err: Mapping[str, Any], msg: str, loc: list[str]) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(loc, err)
    if kind == "missing":
        return "missing required key"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected one of {expected}, got {got!r}{_suggest(got, expected)}"
    if kind == "union_type":
        return f"{msg}, got {describe_value(got)}"
    if kind in ("model_type", "model_attributes_type") and loc[:1] == ["parameters"]:
        return f"expected a mapping such as {_param_example(got)}, got {describe_value(got)}"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {describe_value(got)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ops = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}
        ctx = err.get("ctx", {})
        bound = next(iter(ctx.values()), "")
        return f"must be {ops.get(kind, '<=')} {bound}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return (
            f"expected letters, digits, '_', '.' or '-' (not starting with a symbol), got {got!r}"
        )
    if kind == "value_error":
        return msg
    return f"{msg[:1].lower()}{msg[1:]}, got {describe_value(got)}"


def _param_example(got: Any) -> str:
    """W&B's form for what the file wrote bare under ``parameters``."""
    if isinstance(got, list):
        return "{values: [" + ", ".join(str(v) for v in got[:4]) + "]}"
    if isinstance(got, (bool, int, float, str)):
        return f"{{value: {str(got).lower() if isinstance(got, bool) else got}}}"
    return "{values: [...]} or {min: ..., max: ...}"


def _unknown_key(loc: list[str], err: Mapping[str, Any]) -> str:
    key = loc[-1] if loc else "?"
    valid = _valid_keys(loc[:-1])
    hint = ""
    if valid:
        hint = did_you_mean(key, valid) or f"; expected one of {', '.join(valid)}"
    return f"unknown key {key!r}{hint}"


def _valid_keys(parent: list[str]) -> list[str]:
    """Field names of the model at key path ``parent`` (for suggestions)."""
    node: Any = Spec
    for part in parent:
        if isinstance(node, tuple):  # a dict of models: ``part`` is a free-form key
            node = node[1]
            continue
        fields = getattr(node, "model_fields", None)
        if not fields or part not in fields:
            return []
        node = _node_of(fields[part].annotation)
    fields = getattr(node, "model_fields", None)
    return list(fields) if fields else []


def _node_of(annotation: Any) -> Any:
    if get_origin(annotation) is dict:
        value = _model_of(get_args(annotation)[1])
        return ("dict", value) if value is not None else None
    return _model_of(annotation)


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


_ALIASES = {
    "loguniform": "log_uniform_values",
    "int": "int_uniform",
    "choice": "categorical",
    "max": "maximize",
    "min": "minimize",
}


def _suggest(got: Any, expected: str) -> str:
    if not isinstance(got, str):
        return ""
    if got in _ALIASES and f"'{_ALIASES[got]}'" in expected:
        return f"; did you mean {_ALIASES[got]!r}?"
    return did_you_mean(got, re.findall(r"'([^']*)'", expected))
