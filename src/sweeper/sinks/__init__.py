"""Where a study's records go as its trials run: the trial table and history, W&B,
TensorBoard, the Optuna mirror and the progress line.

The engine's driver callback turns Ray Tune's events into records and hands them to each
sink; a failing sink never fails the study.
"""
