"""Shared Hub plumbing for the registry: spec parsing, repo-type detection, friendly errors."""

from __future__ import annotations

from dataclasses import dataclass

from ..endpoint import get_api
from ..errors import InputError
from .source import SPEC as _SPEC


@dataclass(frozen=True)
class Spec:
    repo_id: str
    revision: str | None = None


def parse_spec(spec: str) -> Spec:
    """``NS/NAME[@REV]``."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise InputError(f"'{spec}' is not a repo id", "use NS/NAME or NS/NAME@REVISION (branch, tag or commit sha)")
    return Spec(m.group(1), m.group(2))


def repo_type_of(spec: Spec) -> str:
    """'model' or 'dataset': whichever exists (models first); unknown repo -> InputError."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    hub = get_api()
    missing: RepositoryNotFoundError | None = None
    for rtype in ("model", "dataset"):
        try:
            hub.repo_info(spec.repo_id, repo_type=rtype)
        except RepositoryNotFoundError as exc:
            missing = missing or exc
            continue
        if spec.revision:
            try:
                hub.repo_info(spec.repo_id, repo_type=rtype, revision=spec.revision)
            except RevisionNotFoundError:
                raise InputError(
                    f"{spec.repo_id} has no revision '{spec.revision}'",
                    f"see its branches and tags with: deltahub show {spec.repo_id}",
                ) from None
        return rtype
    from ..endpoint import repo_not_found

    raise repo_not_found(spec.repo_id, missing)
