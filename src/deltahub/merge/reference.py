"""GAM's reference input: one rule, one function, every route.

:func:`resolve_reference` turns what the user wrote (an index, an input's name, or ``auto``) into
ONE input index for the whole merge. It is GAM's ``prepare``, so every route calls it (``deltahub
merge``, ``merge_adapters``, recipes, ``merge_module`` on one module, the mergekit plugin); nothing
else parses a reference. A reference is one adapter, as in the paper (PDA §4, footnote 2: the adapter with the
best validation score), never a per-module choice.

**Mixed ranks.** Inputs of different ranks are zero-padded to the largest rank r before the
Procrustes step. When the reference has rank r, every lower-rank input's padded problem has a
unique solution (its padded rows meet the reference's real columns and are killed by its own zero
columns), so ΔW is unique. When an input has a larger rank than the reference, the reference's
zero columns leave the rotation of that input's extra directions arbitrary, and with two or more
such inputs those arbitrary directions are averaged together: two equally optimal rotations gave
updates 39% apart. So the reference must have the largest rank: ``auto`` chooses among the inputs
of the largest rank, and an explicit reference of a lower rank stops the merge (naming the inputs
that qualify). Ranks are compared per module; a module an input lacks is rank 0 there.

**auto**: among the inputs of the largest rank (in every module), the one whose left and right
subspaces agree most with all the others, summed over every module (no validation data needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from ..errors import InputError
from ..threads import single_thread
from .adapters import nonfinite_error
from .lowrank import COMPUTE_DTYPE, FactoredSVD, LowRank, NonFiniteFactors, ThinSVD, factored_svd
from .params import AUTO
from .protocol import InputIndexError

Labels = Sequence[Sequence[str]]  # per input: the names it answers to, the display name first


class ReferenceRankError(InputIndexError):
    """An explicit reference whose rank is below the largest input rank (see the module doc)."""

    def __init__(self, message: str, fix: str, index: int, ranks: Sequence[int]):
        super().__init__(message, fix)
        self.index, self.ranks = index, list(ranks)

    def relabel(self, labels: Labels, module: str | None) -> InputError:
        return rank_error(self.index, self.ranks, labels, module)


def subspace_agreement(svds: Sequence[ThinSVD] | Sequence[FactoredSVD]) -> torch.Tensor:
    """For each delta, how much its left and right subspaces overlap with every other delta's.

    score_i = Σ_{j≠i} (‖UᵢᵀUⱼ‖²_F + ‖VᵢᵀVⱼ‖²_F) / (rᵢ + rⱼ), in [0, 2·(n-1)].
    """
    n = len(svds)
    Us, Vs = [s.U for s in svds], [s.V for s in svds]
    scores = torch.zeros(n, dtype=COMPUTE_DTYPE)
    for i in range(n):
        for j in range(i + 1, n):
            overlap = torch.linalg.matrix_norm(Us[i].T @ Us[j]) ** 2 + torch.linalg.matrix_norm(Vs[i].T @ Vs[j]) ** 2
            overlap = overlap / max(svds[i].S.shape[0] + svds[j].S.shape[0], 1)
            scores[i] += overlap
            scores[j] += overlap
    return scores


def rank_error(index: int, ranks: Sequence[int], labels: Labels, module: str | None) -> ReferenceRankError:
    """The one-line error for a reference below the largest rank, naming the inputs that qualify."""
    top = max(ranks)
    best = [labels[i][0] for i, r in enumerate(ranks) if r == top]
    where = f" in {module}" if module else ""
    return ReferenceRankError(
        f"GAM reference {labels[index][0]} has rank {ranks[index]}{where}, below the largest input rank {top} "
        f"({', '.join(best)}): the alignment of the extra directions would be arbitrary",
        f"set the reference to a rank-{top} input ({', '.join(best)}) or to auto",
        index,
        ranks,
    )


def resolve_reference(
    reference: int | str,
    labels: Labels,
    ranks: Mapping[str, Sequence[int]],
    module_deltas: Callable[[], Iterable[tuple[str, Sequence[LowRank]]]] | None = None,
) -> int:
    """The index of GAM's reference input, for the whole merge.

    ``labels[i]`` are the names input i answers to (its display name first); ``ranks`` maps each
    module to every input's rank there (0 where it lacks the module); ``module_deltas()`` yields
    every module's name and deltas (one per input) and is read only for ``auto``. An index is an
    int or a string of digits; any other string is ``auto`` or an input's name.
    """
    if reference == AUTO:
        return _auto(labels, module_deltas)
    index = _explicit_index(reference, labels)
    for module, row in ranks.items():
        if row[index] < max(row):
            raise rank_error(index, row, labels, module)
    return index


def _explicit_index(reference: int | str, labels: Labels) -> int:
    n = len(labels)
    fix_all = "pass an index from 0 to {}, auto, or one of: {}".format(n - 1, ", ".join(names[0] for names in labels))
    if isinstance(reference, str) and reference.isdigit():
        reference = int(reference)
    if isinstance(reference, bool) or not isinstance(reference, (int, str)):
        raise InputError(f"GAM reference must be an index, an input's name or auto, got {reference!r}", fix_all)
    if isinstance(reference, int):
        if not 0 <= reference < n:
            raise InputError(f"GAM reference index {reference} is out of range for {n} inputs", fix_all)
        return reference
    hits = [i for i, names in enumerate(labels) if reference in names]
    if not hits:
        raise InputError(f"GAM reference {reference!r} is none of the inputs", fix_all)
    if len(hits) > 1:
        raise InputError(
            f"GAM reference {reference!r} names inputs {', '.join(map(str, hits))}",
            "pass the index of the one you mean",
        )
    return hits[0]


def _auto(labels: Labels, module_deltas: Callable[[], Iterable[tuple[str, Sequence[LowRank]]]] | None) -> int:
    """Among the inputs of the largest numerical rank in every module, the most central one."""
    n = len(labels)
    if n == 1:
        return 0
    if module_deltas is None:
        raise ValueError("reference auto needs the inputs' deltas")
    scores = torch.zeros(n, dtype=COMPUTE_DTYPE)
    eligible = [True] * n
    last = ""  # the module that ruled out the last candidates, for the error
    with single_thread():  # thin matrices (see single_thread): 3 ms -> 0.1 ms per Cholesky here
        for module, deltas in module_deltas():
            try:
                svds = [factored_svd(d, index=i) for i, d in enumerate(deltas)]
            except NonFiniteFactors as exc:
                raise nonfinite_error(labels[exc.index][0], module) from None
            numeric = [s.S.shape[0] for s in svds]  # numerical ranks: an exactly deficient input drops out
            top = max(numeric)
            if any(eligible) and not any(e and r == top for e, r in zip(eligible, numeric, strict=True)):
                best = ", ".join(labels[i][0] for i, r in enumerate(numeric) if r == top)
                last = f" (in {module} the largest rank, {top}, is only in {best})"
            eligible = [e and r == top for e, r in zip(eligible, numeric, strict=True)]
            scores += subspace_agreement(svds)
    if not any(eligible):
        raise InputError(
            f"GAM reference auto: no input has the largest rank in every module{last}, so every "
            "choice leaves some alignment arbitrary",
            "merge adapters one of which has the largest rank in every module it touches "
            "(e.g. equal ranks and target modules)",
        )
    masked = torch.where(torch.tensor(eligible), scores, torch.full_like(scores, -torch.inf))
    return int(torch.argmax(masked))
