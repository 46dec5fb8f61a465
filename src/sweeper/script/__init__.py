"""Own-script trials: the user's training script, run per trial as W&B's agent runs it.

``command`` builds the argv (W&B's macros), ``launch`` the environment and files,
``process`` starts and stops the process group, ``hook/sitecustomize.py`` reports each
``wandb.log`` call; the Ray Tune adapter that runs them is ``engine/script_trainable.py``.
Nothing here imports ray or wandb.
"""

from __future__ import annotations

from sweeper.script.command import DEFAULT_COMMAND, MACROS, build_command, sweep_args
from sweeper.script.launch import Launch, plan_launch

__all__ = [
    "DEFAULT_COMMAND",
    "MACROS",
    "Launch",
    "build_command",
    "plan_launch",
    "sweep_args",
]
