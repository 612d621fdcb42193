"""Shared Hub plumbing for the registry: spec parsing, repo-type detection, friendly errors."""

from __future__ import annotations

from dataclasses import dataclass

from ..endpoint import api
from ..errors import InputError
from .hub_errors import hub_errors, if_exists
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


def repo_type_of(spec: Spec, hub=None) -> str:
    """'model' or 'dataset': whichever exists (models first) on ``hub``'s registry; unknown repo -> InputError."""
    hub = hub or api()
    with hub_errors(spec.repo_id, revision=spec.revision, endpoint=hub.endpoint):
        rtype = "model"
        if if_exists(lambda: hub.repo_info(spec.repo_id, repo_type="model")) is None:
            rtype = "dataset"
            hub.repo_info(spec.repo_id, repo_type=rtype)  # neither: the dataset's answer says so
        if spec.revision:
            hub.repo_info(spec.repo_id, repo_type=rtype, revision=spec.revision)
    return rtype
