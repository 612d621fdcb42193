"""Hub client set-up in one place.

huggingface_hub and datasets read their endpoint and Xet switch at import time, so
``setup_client`` sets the environment before either is first imported (project code imports
them lazily, after calling it). Default endpoint: ``DELTAHUB_ENDPOINT``, else the embedded
registry under ``$DELTAHUB_HOME/registry`` started on demand in a background thread.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

OPEN_TOKEN = "deltahub-open"
_lock = threading.Lock()
_endpoint: str | None = None
_server = None


def registry_root() -> Path:
    """Where the embedded registry keeps its data."""
    home = os.environ.get("DELTAHUB_HOME") or str(Path.home() / ".cache" / "deltahub")
    return Path(home) / "registry"


def setup_client(endpoint: str | None = None, token: str | None = None) -> str:
    """Point huggingface_hub/datasets at ``endpoint`` (or the default) and return the endpoint URL."""
    global _endpoint, _server
    with _lock:
        endpoint = endpoint or os.environ.get("DELTAHUB_ENDPOINT") or _endpoint
        if not endpoint:
            from ..server import start_server

            _server = start_server(registry_root())
            endpoint = _server.url
        endpoint = endpoint.rstrip("/")
        os.environ["HF_ENDPOINT"] = endpoint
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        if token:
            os.environ["HF_TOKEN"] = token
        elif not os.environ.get("HF_TOKEN") and _is_loopback(endpoint):
            # huggingface_hub refuses whoami/create without some token; the open local registry ignores it.
            os.environ["HF_TOKEN"] = OPEN_TOKEN
        _patch_loaded(endpoint, token)
        _endpoint = endpoint
        return endpoint


def _is_loopback(endpoint: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(endpoint).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _patch_loaded(endpoint: str, token: str | None) -> None:
    """Best effort for modules already imported (the env is what counts for later imports)."""
    hh = sys.modules.get("huggingface_hub.constants")
    if hh is not None:
        hh.ENDPOINT = endpoint
        hh.HF_HUB_DISABLE_XET = True
        hh.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    dc = sys.modules.get("datasets.config")
    if dc is not None:
        dc.HF_ENDPOINT = endpoint
        dc.USE_PARQUET_EXPORT = False
        dc.HF_UPDATE_DOWNLOAD_COUNTS = False
    hub = sys.modules.get("huggingface_hub.hf_api")
    if hub is not None:
        api = getattr(hub, "api", None)
        if api is not None:
            api.endpoint = endpoint
    if "datasets" not in sys.modules:
        return
    import datasets.config

    datasets.config.USE_PARQUET_EXPORT = False


def get_api(token: str | None = None):
    """An ``HfApi`` bound to the configured endpoint (setting the client up first if needed)."""
    endpoint = _endpoint or setup_client(token=token)
    import datasets.config  # noqa: F401  (set its flags now that the env is in place)

    datasets.config.USE_PARQUET_EXPORT = False
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token or os.environ.get("HF_TOKEN"))


def stop_embedded() -> None:
    """Stop the on-demand registry started by this process, if any (tests)."""
    global _server, _endpoint
    if _server is not None:
        _server.stop()
        _server = None
        _endpoint = None
