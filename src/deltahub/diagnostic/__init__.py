"""The delta diagnostic: how well each delta's update points toward an oracle's (factor-space
Frobenius cosines, per module and overall), and whether that predicts the measured gains
(Spearman's rho with a bootstrap interval). See docs/diagnostic.md."""

from .alignment import (
    Diagnosis,
    ModuleAlignment,
    align,
    cosine,
    diagnose,
    frobenius_norm,
    inner_product,
)
from .rank import RankCorrelation, average_ranks, rank_correlation, spearman
from .table import diagnosis_table

__all__ = [
    "Diagnosis",
    "ModuleAlignment",
    "RankCorrelation",
    "align",
    "average_ranks",
    "cosine",
    "diagnose",
    "diagnosis_table",
    "frobenius_norm",
    "inner_product",
    "rank_correlation",
    "spearman",
]
