"""User-facing errors: each prints as one line and exits with status 2."""

from __future__ import annotations


class SweeperError(Exception):
    """An error caused by the user's input (a file, a flag, a study folder).

    The CLI prints ``str(error)`` as one line and exits with :attr:`exit_code`;
    the traceback is shown only with ``--debug``.
    """

    exit_code = 2


class SpecError(SweeperError):
    """A sweep file, or a ``--set`` override, that does not describe a valid sweep.

    Args:
        source: where the text came from (a file path, or ``--set``).
        key: the dotted key path inside the spec (``parameters.lr.min``), or "" for the file.
        message: what was expected and what arrived.
    """

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")


def describe_value(value: object) -> str:
    """What arrived, in the file's terms: ``a boolean true``, ``float 32.5``, ``a list``."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):  # YAML spells it true/false (or yes/no, on/off)
        return f"a boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"a string {value!r}"
    kinds = {dict: "a mapping", list: "a list", tuple: "a list"}
    for typ, word in kinds.items():
        if isinstance(value, typ):
            return word
    return f"{type(value).__name__} {value!r}"
