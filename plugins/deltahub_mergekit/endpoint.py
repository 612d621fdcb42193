"""A mergekit run that uses deltahub's methods resolves repo ids through deltahub's endpoint.

mergekit turns every model id into files with huggingface_hub, first in ``run_merge`` →
``get_architecture_info`` → ``MergeConfiguration.referenced_models()``, before any download and
long before the merge method is looked up. So this module wraps ``referenced_models``: when the
config's ``merge_method`` is one of deltahub's and some input is not a local folder, the first call
points huggingface_hub at deltahub's endpoint (``deltahub.endpoint.connect``: ``DELTAHUB_ENDPOINT``,
else ``deltahub hub use``, else the embedded registry, started in this process) and checks that
every repo id exists there, naming the endpoint when one does not. Any other config goes straight
to mergekit's own method: same endpoint, same environment, nothing started.
"""

from __future__ import annotations

import os
from typing import Any

_checked: set[tuple[str, str | None]] = set()  # referenced_models() runs several times per merge


def uses_deltahub(config: Any) -> bool:
    from .method import PLUGIN_METHODS

    return getattr(config, "merge_method", None) in PLUGIN_METHODS


def hub_ids(models: list) -> list[tuple[str, str | None]]:
    """(repo id, revision) of every input and adapter that is not a local path, in config order."""
    out: list[tuple[str, str | None]] = []
    for ref in models:
        for part in (ref.model, ref.lora):
            if part is not None and not os.path.exists(part.path) and (part.path, part.revision) not in out:
                out.append((part.path, part.revision))
    return out


def configure(ids: list[tuple[str, str | None]]) -> None:
    """Point huggingface_hub at deltahub's endpoint and check that the repo ids are there."""
    from deltahub.endpoint import connect, current
    from deltahub.share.hub_errors import hub_errors

    # made once (referenced_models() runs several times per merge); mergekit's own downloads read the
    # endpoint from huggingface_hub's constants, which connect() sets
    endpoint = current() or connect()
    import huggingface_hub.constants

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return  # HF_HUB_OFFLINE=1: mergekit reads the local cache; nothing can be checked
    api = endpoint.api()
    for repo_id, revision in ids:
        if (repo_id, revision) in _checked:
            continue
        what = "mergekit input is neither a local folder nor a repo:"
        with hub_errors(repo_id, revision=revision, what=what, invalid_is_missing=True):
            api.repo_info(repo_id, revision=revision)
        _checked.add((repo_id, revision))


def install() -> None:
    """Wrap ``MergeConfiguration.referenced_models`` (idempotent)."""
    from mergekit.config import MergeConfiguration

    original = MergeConfiguration.referenced_models
    if getattr(original, "deltahub_endpoint", False):
        return

    def referenced_models(self):
        models = original(self)
        if uses_deltahub(self):
            ids = hub_ids(models)
            if ids:
                configure(ids)
        return models

    referenced_models.deltahub_endpoint = True
    referenced_models.__wrapped__ = original
    referenced_models.__doc__ = original.__doc__
    MergeConfiguration.referenced_models = referenced_models


install()
