"""LFW-style verification: pairs files, embeddings, the seed's metrics, reports and plots."""

from facenet_core.evaluate.pairs import Pairs, read_pairs, resolve_pairs
from facenet_core.evaluate.report import EvalResult, evaluate_model, write_epoch_report

__all__ = ["EvalResult", "Pairs", "evaluate_model", "read_pairs", "resolve_pairs", "write_epoch_report"]
