"""The search side: the spec's parameters as Optuna sees them (no Ray, no torch).

``space.py`` turns the spec's parameters into Optuna distributions, grid cells and a
sampler (built from ``sweeper.registry.samplers``); ``ga_samplers.py`` makes Optuna's
genetic samplers picklable; ``impute.py`` is W&B's ``impute_while_running`` (the sampler
sees running trials' values so far).
"""
