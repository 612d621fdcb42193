"""Merges of LoRA deltas in LoRA factor space: GAM, its baselines and the factor-space methods.

``merge_module`` merges one module's low-rank updates; ``merge_adapters`` does a whole set of
PEFT adapters module by module and writes a merged adapter or a full model. A method is one typed
function made a method by ``merge_method`` (:mod:`deltahub.merge.protocol`); ``METHODS`` holds
every available one, deltahub's own and those other packages declare in the entry-point group
``deltahub.merge_methods`` (:mod:`deltahub.merge.registry`).
"""

from .adapters import LoraAdapter, load_adapter
from .core import MergeInput, MergeResult, merge_adapters, plan_merge
from .lowrank import LowRank, low_rank_from_dense, thin_svd
from .methods import merge_module
from .params import Density, Input, Scale
from .protocol import Inputs, MergeMethod, merge_method
from .registry import ENTRY_POINT_GROUP, METHODS, get_method, register

# Bumped when the same inputs and parameters merge to a different result, so cached merges
# (``deltahub run``'s stage cache) are redone.
MERGE_VERSION = 2

__all__ = [
    "ENTRY_POINT_GROUP",
    "MERGE_VERSION",
    "METHODS",
    "Density",
    "Input",
    "Inputs",
    "LoraAdapter",
    "LowRank",
    "MergeInput",
    "MergeMethod",
    "MergeResult",
    "Scale",
    "get_method",
    "load_adapter",
    "low_rank_from_dense",
    "merge_adapters",
    "merge_method",
    "merge_module",
    "plan_merge",
    "register",
    "thin_svd",
]
