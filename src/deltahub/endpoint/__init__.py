"""Hub client set-up in one place.

huggingface_hub and datasets read their endpoint at import time, so
``setup_client`` sets the environment before either is first imported (project code imports
them lazily, after calling it), and patches the constants of modules already imported (the
mergekit plugin runs after mergekit imported huggingface_hub). Which endpoint: see
``settings.choose`` (``DELTAHUB_ENDPOINT``, else ``deltahub hub use``, else the embedded registry
under ``$DELTAHUB_HOME/registry``, started on demand in a background thread of this process).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from ..errors import InputError
from ..home import home
from . import owner
from .settings import CHANGE_HINT, EMBEDDED, Choice, choose

OPEN_TOKEN = "deltahub-open"
_lock = threading.Lock()
_endpoint: str | None = None
_choice: Choice | None = None
_server = None


def registry_root() -> Path:
    """Where the embedded registry keeps its data."""
    return home() / "registry"


def setup_client(endpoint: str | None = None, token: str | None = None) -> str:
    """Point huggingface_hub/datasets at ``endpoint`` (a URL or ``"embedded"``; default: the configured
    one) and return the endpoint URL."""
    global _endpoint, _server, _choice
    with _lock:
        env = os.environ.get("DELTAHUB_ENDPOINT")
        if endpoint:
            choice = Choice(endpoint, "the caller", choose().upstream if endpoint == EMBEDDED else None)
        elif env or not _endpoint:
            choice = choose()
        else:
            choice = _choice
        if choice.endpoint == EMBEDDED:
            if _server is None:
                from ..server import start_server

                owner.owner_token()  # a broken token file is a one-line error before anything starts
                _server = start_server(registry_root(), open_mode=False, upstream=choice.upstream)
            url = _server.url
        else:
            url = choice.endpoint.rstrip("/")
        os.environ["HF_ENDPOINT"] = url
        os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        if token:
            os.environ["HF_TOKEN"] = token
        else:
            owner.choose_hf_token(url, OPEN_TOKEN, _is_loopback(url))
        _patch_loaded(url)
        _endpoint, _choice = url, choice
        return url


def describe() -> str:
    """The configured endpoint in words, for messages: which registry, how it was chosen, its upstream."""
    choice = _choice or choose()
    if choice.endpoint == EMBEDDED:
        where = f"started on demand at {_server.url}" if _server is not None else "started on demand"
        upstream = f"upstream {choice.upstream}" if choice.upstream else "no upstream"
        return f"the embedded registry ({where}; data in {registry_root()}; {upstream}; chosen by {choice.source})"
    return f"{choice.endpoint} (chosen by {choice.source})"


def describe_url(url: str) -> str:
    """``url``, or the embedded registry in words when it is that one (never a bare ephemeral port)."""
    return describe() if _server is not None and url.rstrip("/") == _server.url else url


def repo_not_found(repo_id: str, exc: BaseException | None = None, what: str = "no repo") -> InputError:
    """'no repo X on <the endpoint in words>' (+ the registry's reason when it involves the upstream),
    with the fix: check the name, or change the endpoint."""
    why = (getattr(exc, "server_message", None) or "").strip()
    detail = f": {why}" if "upstream" in why else ""
    return InputError(f"{what} {repo_id} on {describe()}{detail}", f"check the name with: deltahub list; {CHANGE_HINT}")


def _is_loopback(endpoint: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(endpoint).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _patch_loaded(endpoint: str) -> None:
    """Modules imported before the environment was set keep import-time copies: update them."""
    from urllib.parse import urlparse

    hh = sys.modules.get("huggingface_hub.constants")
    if hh is not None:
        hh.ENDPOINT = endpoint
        hh.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        hh.HF_URL_HOSTS = frozenset(hh.HF_URL_HOSTS | {urlparse(endpoint).hostname or ""})
    hub = sys.modules.get("huggingface_hub.hf_api")
    if hub is not None and getattr(hub, "api", None) is not None:
        hub.api.endpoint = endpoint  # the module-level functions (list_repo_files, ...) are its bound methods
    dc = sys.modules.get("datasets.config")
    if dc is not None:
        dc.HF_ENDPOINT = endpoint
        dc.HUB_DATASETS_URL = endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
        dc.USE_PARQUET_EXPORT = False
        dc.HF_UPDATE_DOWNLOAD_COUNTS = False


def get_api(token: str | None = None):
    """An ``HfApi`` bound to the configured endpoint (setting the client up first if needed)."""
    endpoint = _endpoint or setup_client(token=token)
    import datasets.config

    datasets.config.USE_PARQUET_EXPORT = False
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token or os.environ.get("HF_TOKEN"))


def stop_embedded() -> None:
    """Stop the on-demand registry started by this process, if any (tests)."""
    global _server, _endpoint, _choice
    if _server is not None:
        _server.stop()
        _server = None
        _endpoint = None
        _choice = None
