"""Evaluation: lm-eval tasks (HF backend on CPU, vLLM where installed) and the toy skills, one result format."""

from .card import write_model_index
from .core import evaluate, is_toy_task
from .table import comparison_table

__all__ = ["comparison_table", "evaluate", "is_toy_task", "write_model_index"]
