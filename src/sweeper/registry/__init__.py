"""The names a sweep file may use, as data (no torch, Ray or Optuna at import).

``optimizers.py``: the optimizers; ``schedulers.py``: Ray Tune's schedulers and Optuna's
pruners. The spec validates names against these; the trial and the engine build from them.
Models (``sweeper.models``) and data sets (``sweeper.data``) keep their registries beside
their code.
"""
