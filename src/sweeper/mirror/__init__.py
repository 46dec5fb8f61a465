"""Where the study's Optuna mirror lives: its storage URL, checked, masked, opened, counted.

The mirror itself (ended trials written as Optuna trials) is a sink: ``sinks/mirror.py``.
"""
