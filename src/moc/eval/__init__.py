"""Evaluations of trained models on held-out world scenes."""

from moc.eval.memory import EvalModel, Setting, evaluate_memory

__all__ = ["EvalModel", "Setting", "evaluate_memory"]
