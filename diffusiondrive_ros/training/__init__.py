"""Offline training and evaluation helpers: open-loop metrics, kinematic baselines, trajectory anchor clustering."""
