"""The study folder (see :mod:`sweeper.store.study`): the one place a study's results live."""

from sweeper.store.files import append_text, atomic_write
from sweeper.store.study import (
    DEFAULT_ROOT,
    PARAM_PREFIX,
    STUDY_FORMAT,
    Study,
    StudyExists,
    dump_spec,
    study_path,
)
from sweeper.store.table import BASE_COLUMNS

__all__ = [
    "BASE_COLUMNS",
    "DEFAULT_ROOT",
    "PARAM_PREFIX",
    "STUDY_FORMAT",
    "Study",
    "StudyExists",
    "append_text",
    "atomic_write",
    "dump_spec",
    "study_path",
]
