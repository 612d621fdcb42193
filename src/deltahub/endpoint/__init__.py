"""The endpoint as one value, and the Hub clients pointed at it, in one place.

:func:`connect` makes the :class:`Endpoint` (URL, the caller's token, how it was chosen) that
deltahub's own code passes on. huggingface_hub and datasets read their endpoint at import time, so
``connect`` also sets the environment before either is first imported (project code imports
them lazily, after calling it), and patches the constants of modules already imported (the
mergekit plugin runs after mergekit imported huggingface_hub). Which endpoint: see
``settings.choose`` (``DELTAHUB_ENDPOINT``, else ``deltahub hub use``, else the embedded registry
under ``$DELTAHUB_HOME/registry``, started on demand in a background thread of this process).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..home import home
from . import owner
from .settings import CHANGE_HINT, EMBEDDED, Choice, choose

OPEN_TOKEN = "deltahub-open"
_lock = threading.Lock()
_current: Endpoint | None = None
_server = None


@dataclass(frozen=True)
class Endpoint:
    """The registry deltahub's own code talks to, as one value: its URL, the token the caller gave, and
    how it was chosen. Made once by :func:`connect` and passed on; huggingface_hub and datasets get it
    through the environment only because their own code reads it there."""

    url: str
    choice: Choice
    token: str | None = None  # given by the caller; None: the client's own rule (HF_TOKEN, else `hf auth login`)

    def api(self):
        """An ``HfApi`` bound to this endpoint."""
        import datasets.config

        datasets.config.USE_PARQUET_EXPORT = False
        datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.url, token=self.token or os.environ.get("HF_TOKEN"))

    def describe(self) -> str:
        """This endpoint in words, for messages: which registry, how it was chosen, its upstream."""
        if self.choice.endpoint == EMBEDDED:
            where = f"started on demand at {self.url}" if self.url else "started on demand"
            upstream = f"upstream {self.choice.upstream}" if self.choice.upstream else "no upstream"
            source = self.choice.source
            return f"the embedded registry ({where}; data in {registry_root()}; {upstream}; chosen by {source})"
        return f"{self.choice.endpoint} (chosen by {self.choice.source})"

    def describe_url(self, url: str) -> str:
        """``url``, or the embedded registry in words when it is this one (never a bare ephemeral port)."""
        return self.describe() if self.choice.endpoint == EMBEDDED and url.rstrip("/") == self.url else url


def registry_root() -> Path:
    """Where the embedded registry keeps its data."""
    return home() / "registry"


def connect(endpoint: str | None = None, token: str | None = None) -> Endpoint:
    """The endpoint this process uses: ``endpoint`` (a URL or ``"embedded"``) when given, else the one
    already made (unless ``DELTAHUB_ENDPOINT`` is set: then its rule again), else :func:`settings.choose`.
    Points huggingface_hub/datasets at it, starting the embedded registry on first use."""
    global _server, _current
    with _lock:
        if endpoint:
            choice = Choice(endpoint, "the caller", choose().upstream if endpoint == EMBEDDED else None)
        elif os.environ.get("DELTAHUB_ENDPOINT") or _current is None:
            choice = choose()
        else:
            choice = _current.choice
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
        if token is None and _current is not None and _current.choice == choice:
            token = _current.token  # the same registry, asked again without a token: the one given before
        if _current is None or (_current.url, _current.choice, _current.token) != (url, choice, token):
            _current = Endpoint(url, choice, token)
        return _current


def current() -> Endpoint | None:
    """The endpoint this process made, if it made one (nothing is started)."""
    return _current


def api(endpoint: Endpoint | None = None):
    """An ``HfApi`` for ``endpoint``, else for this process's endpoint (the Python API, told nothing)."""
    return (endpoint or connect()).api()


def describe() -> str:
    """The configured endpoint in words, without starting anything (``deltahub hub use``)."""
    return (_current or Endpoint("", choose())).describe()


def describe_url(url: str) -> str:
    """``url``, or the endpoint in words when it is this process's one."""
    return _current.describe_url(url) if _current is not None else url


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


def stop_embedded() -> None:
    """Stop the on-demand registry started by this process, if any (tests)."""
    global _server, _current
    if _server is not None:
        _server.stop()
        _server = None
        _current = None
