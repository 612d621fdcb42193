"""Shared test set-up.

* A network guard: any attempt to resolve or connect to a host outside loopback fails the test
  at once, so no test can reach the Hub (or anything else) by accident.
* Hub client environment: HF_HOME in a temporary folder, Xet off, telemetry off, set before any
  test imports huggingface_hub.
* DELTAHUB_HOME in a temporary folder whose saved settings turn the embedded registry's read-through
  upstream off (tests that exercise read-through use a loopback registry as the upstream).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
from pathlib import Path

import pytest

_HF_HOME = tempfile.mkdtemp(prefix="deltahub-test-hf-")
os.environ.setdefault("HF_HOME", _HF_HOME)
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
if "DELTAHUB_HOME" not in os.environ:
    os.environ["DELTAHUB_HOME"] = tempfile.mkdtemp(prefix="deltahub-test-home-")
    # on-demand registries (here and in subprocesses) do not read through to the public Hub; tests
    # that exercise read-through give a loopback registry as the upstream
    Path(os.environ["DELTAHUB_HOME"], "settings.json").write_text('{"upstream": null}\n')
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to reach a host outside loopback."""


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in _LOOPBACK_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_loopback(host):
        raise NetworkAccessError(f"test tried to resolve {host!r}: tests must not use the network")
    return _real_getaddrinfo(host, *args, **kwargs)


def _check_address(address) -> None:
    if isinstance(address, tuple) and address and not _is_loopback(address[0]):
        raise NetworkAccessError(f"test tried to connect to {address!r}: tests must not use the network")


def _guarded_connect(self, address):
    _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check_address(address)
    return _real_connect_ex(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random Qwen3 model folder (2 layers, hidden 64) with a char tokenizer and chat template."""
    from deltahub.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", hidden_size=64, num_layers=2, seed=0)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """An open embedded registry on loopback for one test module, with the Hub clients pointed at it."""
    from deltahub.endpoint import connect
    from deltahub.server import start_server

    server = start_server(tmp_path_factory.mktemp("registry"))
    connect(endpoint=server.url)
    yield server
    server.stop()
