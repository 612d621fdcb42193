"""conftest.py for huggingface_hub's own tests, run against the embedded registry (installed by hf-conformance.py).

The sdist ships its tests without their conftest.py, so this file provides the fixtures they use
(``api``, ``repo_factory``, the per-test cache folder, the ``xet``/``production`` markers), plus
what the conformance run needs:

* each test is classified: set aside up front by the CATEGORIES table (features outside a
  model/dataset registry) or by what it did at run time: a request to a host other than the local
  registry means it needs the public Hub; a test that never reached the registry is a client-only
  unit test. Only tests that reached the registry and nothing else are in scope.
* a network guard: a request to any other host fails at once (never leaves the machine).

Results go to $HF_CONFORMANCE_OUT (one JSON line per test) for the runner to count.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

REGISTRY = os.environ["HF_CONFORMANCE_ENDPOINT"]  # http://127.0.0.1:PORT
_HOST, _PORT = REGISTRY.removeprefix("http://").split(":")
OUT = Path(os.environ["HF_CONFORMANCE_OUT"])

XET = os.environ.get("HF_CONFORMANCE_XET", "1") == "1"  # the registry speaks Xet: its tests are in scope
# (category, regex on the test's node id): features outside a model/dataset registry, set aside unrun.
CATEGORIES: list[tuple[str, str]] = [
    *([] if XET else [("Xet", r"test_xet_|::.*[Xx]et|xet_|\[.*xet")]),
    ("buckets", r"test_bucket|[Bb]ucket"),
    (
        "inference endpoints",
        r"test_inference_endpoints|InferenceEndpoint|inference_endpoint|_endpoint_image|"
        r"parallelism_in_image|build_custom_image",
    ),
    ("inference", r"test_inference_|[Ii]nference|tiny_agents|test_mcp"),
    ("jobs", r"test_jobs_|[Jj]obs?(Command|Api|Wait)|[Vv]olume|UvScript|_job_|JobId"),
    ("Spaces", r"(?<!name)(?<!white)[Ss]pace|test_sandbox"),
    ("webhooks", r"[Ww]ebhook"),
    ("papers", r"[Pp]aper"),
    ("billing", r"[Bb]illing"),
    ("kernels", r"test_kernels"),
    ("OAuth", r"test_oauth|OAuth"),
    ("skills and extensions", r"[Ss]kill|Extension|_FakeGitHub"),
    ("gated access requests", r"AccessRequest"),
    ("needs git-lfs", r"HfLargefiles"),
]
_COMPILED = [(name, re.compile(pattern)) for name, pattern in CATEGORIES]


def category_of(nodeid: str) -> str | None:
    for name, pattern in _COMPILED:
        if pattern.search(nodeid):
            return name
    return None


# -- what each test touched ----------------------------------------------------------------------
# Hosts each running test, and each fixture being set up, sent requests to. A class- or module-scoped
# fixture runs once (and a failure in it is replayed to every test without a request): its hosts
# count for every test that uses it.
_touched: list[set[str]] = [set()]  # [this test's set, then one per fixture being set up]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _note(host: str | None, port: int | None) -> bool:
    """Record a request; True when it may go ahead (loopback: the registry, or a test's own fake server)."""
    label = "registry" if host in _LOOPBACK and str(port) == _PORT else f"{host}:{port}"
    for hosts in _touched:
        hosts.add(label)
    return host in _LOOPBACK


def _guard_transports() -> None:
    import httpx2

    sync_send = httpx2.HTTPTransport.handle_request
    async_send = httpx2.AsyncHTTPTransport.handle_async_request

    def handle_request(self, request):
        if not _note(request.url.host, request.url.port):
            raise httpx2.ConnectError(f"conformance run: no network outside the local registry ({request.url})")
        return sync_send(self, request)

    async def handle_async_request(self, request):
        if not _note(request.url.host, request.url.port):
            raise httpx2.ConnectError(f"conformance run: no network outside the local registry ({request.url})")
        return await async_send(self, request)

    httpx2.HTTPTransport.handle_request = handle_request
    httpx2.AsyncHTTPTransport.handle_async_request = handle_async_request

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host is not None and host not in _LOOPBACK:
            _note(host, port)
            raise OSError(f"conformance run: no network outside the local registry ({host})")
        return real_getaddrinfo(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


_guard_transports()


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    _touched.append(set())
    try:
        yield
    finally:
        fixturedef.conformance_hosts = _touched.pop()


def pytest_collection_modifyitems(config, items):
    kept, aside = [], []
    for item in items:
        category = category_of(item.nodeid)
        if category is None and any("bucket" in name for name in getattr(item, "fixturenames", ())):
            category = "buckets"  # (hf cp tests of storage buckets, named after the command)
        if category is None and item.get_closest_marker("production") is not None:
            category = "needs public-Hub content"
        if category is None and not XET and item.get_closest_marker("xet") is not None:
            category = "Xet"
        if category is None:
            kept.append(item)
        else:
            aside.append(item)
            _write({"id": item.nodeid, "outcome": "set aside", "category": category})
    if aside:
        config.hook.pytest_deselected(items=aside)
    items[:] = kept


def pytest_collectreport(report):
    if report.failed:  # a test module that cannot be imported here (a missing tool, a file left out of the sdist)
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1]
        _write(
            {
                "id": report.nodeid,
                "outcome": "set aside",
                "category": category_of(report.nodeid) or f"cannot be collected ({reason[:80]})",
            }
        )


def _write(record: dict) -> None:
    with open(OUT, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _touched[:] = [set()]
    _reports.clear()
    yield
    reports = list(_reports)
    failed = [r for r in reports if r.failed]
    skipped = [r for r in reports if r.skipped]
    outcome = "failed" if failed else "skipped" if skipped else "passed"
    hosts = set(_touched[0])
    for defs in item._fixtureinfo.name2fixturedefs.values():
        hosts |= getattr(defs[-1], "conformance_hosts", set())
    hosts = sorted(hosts)
    if any(h != "registry" and h.split(":")[0] not in _LOOPBACK for h in hosts):
        scope = "needs public-Hub content"
    elif "registry" in hosts:
        scope = "registry"
    else:
        scope = "client-only"
    error = ""
    if failed:
        crash = getattr(failed[0].longrepr, "reprcrash", None)
        error = crash.message if crash is not None else str(failed[0].longrepr)[-400:]
    elif skipped:
        error = str(skipped[0].longrepr[-1]) if isinstance(skipped[0].longrepr, tuple) else ""
    _write({"id": item.nodeid, "outcome": outcome, "scope": scope, "hosts": hosts, "error": error[:600]})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _reports.append(outcome.get_result())


_reports: list = []


# -- the fixtures the sdist's tests expect ----------------------------------------------------------
@pytest.fixture(autouse=True)
def patch_constants(monkeypatch, tmp_path_factory) -> Iterator[None]:
    """A fresh HF cache and token file per test (tests must not see each other's downloads or logins)."""
    from huggingface_hub import constants

    cache = tmp_path_factory.mktemp("hf-home")
    for name, sub in [
        ("HF_HOME", ""),
        ("HF_HUB_CACHE", "hub"),
        ("HF_XET_CACHE", "xet"),
        ("HUGGINGFACE_HUB_CACHE", "hub"),
        ("HF_ASSETS_CACHE", "assets"),
        ("HF_TOKEN_PATH", "token"),
        ("HF_STORED_TOKENS_PATH", "stored_tokens"),
    ]:
        monkeypatch.setattr(constants, name, str(cache / sub) if sub else str(cache))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_EXPERIMENTAL_WARNING", True)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    yield


@pytest.fixture(autouse=True)
def git_lfs_marker(request) -> None:
    if request.node.get_closest_marker("git_lfs") is not None and os.environ.get("RUN_GIT_LFS_TESTS") != "1":
        pytest.skip("git-lfs test (set RUN_GIT_LFS_TESTS=1 to run)")


@pytest.fixture(scope="session")
def api():
    from huggingface_hub import HfApi

    from .testing_constants import ENDPOINT_STAGING, TOKEN

    return HfApi(endpoint=ENDPOINT_STAGING, token=TOKEN)


class RepoFactory(Protocol):
    """The type of ``repo_factory`` (tests import it from here)."""

    def __call__(self, repo_type: str = "model", **kwargs) -> Any: ...


@pytest.fixture
def repo_factory(api):
    """Create repos with unique names for one test and delete them afterwards."""
    from .testing_utils import repo_name

    created: list[tuple[str, str, str | None]] = []

    def factory(repo_type: str = "model", **kwargs):
        if repo_type == "space":
            kwargs.setdefault("space_sdk", "gradio")
        repo_id = kwargs.pop("repo_id", None) or repo_name(prefix=repo_type)
        url = api.create_repo(repo_id=repo_id, repo_type=repo_type, **kwargs)
        created.append((url.repo_id, repo_type, kwargs.get("token")))
        return url

    yield factory
    for repo_id, repo_type, token in created:
        try:
            api.delete_repo(repo_id=repo_id, repo_type=repo_type, token=token)
        except Exception:  # the test may have deleted or moved it
            pass


@pytest.fixture
def new_repo_id(api):
    """A repo id of the test user that does not exist yet (deleted after the test if it was created)."""
    from .testing_constants import USER
    from .testing_utils import repo_name

    repo_id = f"{USER}/{repo_name()}"
    yield repo_id
    api.delete_repo(repo_id=repo_id, missing_ok=True)
