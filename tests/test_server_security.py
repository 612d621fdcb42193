"""Security and integrity of the registry: tokens, private repos, path validation, corrupted uploads."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request

import pytest

from deltahub.server import start_server


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """A registry in token mode: alice owns 'alice' and org 'team'; bob owns 'bob'."""
    srv = start_server(
        tmp_path_factory.mktemp("reg"),
        open_mode=False,
        tokens={"tok-alice": "alice", "tok-bob": "bob"},
        orgs={"alice": ["team"]},
    )
    yield srv
    srv.stop()


def _api(srv, token):
    from huggingface_hub import HfApi

    return HfApi(endpoint=srv.url, token=token)


def _req(srv, method, path, body=None, token=None, ctype="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(srv.url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_writes_need_a_token_that_owns_the_namespace(locked):
    from huggingface_hub.errors import HfHubHTTPError

    alice, bob = _api(locked, "tok-alice"), _api(locked, "tok-bob")
    alice.create_repo("alice/m")
    alice.create_repo("team/m")
    assert alice.whoami()["name"] == "alice"
    with pytest.raises(HfHubHTTPError):
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/m")
    with pytest.raises(HfHubHTTPError):
        _api(locked, "wrong").create_repo("alice/other")
    status, _ = _req(locked, "POST", "/api/repos/create", {"name": "anon", "organization": "alice"})
    assert status in (401, 403)
    with pytest.raises(HfHubHTTPError):
        bob.delete_repo("team/m")
    assert [f for f in alice.list_repo_files("alice/m")] == [".gitattributes"]


def test_private_repos_are_invisible_to_others(locked):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    alice, bob = _api(locked, "tok-alice"), _api(locked, "tok-bob")
    alice.create_repo("alice/secret", private=True)
    alice.upload_file(path_or_fileobj=b"hidden", path_in_repo="s.txt", repo_id="alice/secret")
    assert alice.model_info("alice/secret").private
    with pytest.raises(RepositoryNotFoundError):
        bob.model_info("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret", "s.txt", token="tok-bob", endpoint=locked.url)
    assert "alice/secret" not in [m.id for m in bob.list_models(author="alice")]
    assert "alice/secret" in [m.id for m in alice.list_models(author="alice")]
    alice.update_repo_settings("alice/secret", private=False)
    assert bob.model_info("alice/secret").id == "alice/secret"


@pytest.mark.parametrize(
    "bad",
    ["../evil", "/abs/x", "..\\evil", "\\\\host\\share", "C:\\x", "a\x00b", "a//b", "./x", "x" * 1200, "a/../../b"],
)
def test_path_traversal_names_are_rejected(locked, bad):
    _api(locked, "tok-alice").create_repo("alice/paths", exist_ok=True)
    lines = [
        {"key": "header", "value": {"summary": "evil"}},
        {"key": "file", "value": {"path": bad, "content": base64.b64encode(b"x").decode(), "encoding": "base64"}},
    ]
    body = "\n".join(json.dumps(x) for x in lines).encode()
    status, payload = _req(
        locked, "POST", "/api/models/alice/paths/commit/main", body, "tok-alice", "application/x-ndjson"
    )
    assert status == 422, payload  # the Hub's status for a bad path in a commit body
    assert "invalid path" in json.loads(payload)["error"]
    assert _api(locked, "tok-alice").list_repo_files("alice/paths") == [".gitattributes"]


def test_bad_repo_names_are_rejected(locked):
    for name in ["..", "a b", "x" * 200, "-lead"]:
        status, _ = _req(locked, "POST", "/api/repos/create", {"name": name}, "tok-alice")
        assert status == 400, name


def test_corrupted_upload_is_rejected_and_nothing_is_stored(locked):
    _api(locked, "tok-alice").create_repo("alice/lfs", exist_ok=True)
    data = os.urandom(5000)
    oid = hashlib.sha256(data).hexdigest()
    status, payload = _req(
        locked,
        "POST",
        "/alice/lfs.git/info/lfs/objects/batch",
        {"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]},
        "tok-alice",
    )
    assert status == 200
    href = json.loads(payload)["objects"][0]["actions"]["upload"]["href"]
    corrupted = bytes([data[0] ^ 1]) + data[1:]
    status, _ = _req(locked, "PUT", href[len(locked.url) :], corrupted, ctype="application/octet-stream")
    assert status == 400
    blob = locked.root / "blobs" / oid[:2] / oid
    assert not blob.exists() and not [p for p in (locked.root / "tmp").rglob("*") if p.is_file()]
    # a commit naming the object that never arrived is refused
    lines = [
        {"key": "header", "value": {"summary": "x"}},
        {"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": oid, "size": len(data)}},
    ]
    status, _ = _req(
        locked,
        "POST",
        "/api/models/alice/lfs/commit/main",
        "\n".join(json.dumps(x) for x in lines).encode(),
        "tok-alice",
        "application/x-ndjson",
    )
    assert status == 422
    # the honest bytes go through
    status, _ = _req(locked, "PUT", href[len(locked.url) :], data, ctype="application/octet-stream")
    assert status == 200 and hashlib.sha256(blob.read_bytes()).hexdigest() == oid
    # an upload URL without a valid ticket is refused
    forged = href[len(locked.url) :].split("?")[0] + "?ticket=forged"
    status, _ = _req(locked, "PUT", forged, data)
    assert status == 403


def test_xet_write_token_only_for_writers(locked):
    status, payload = _req(locked, "GET", "/api/models/alice/m/xet-write-token/main", token="tok-alice")
    assert status == 200 and set(json.loads(payload)) == {"accessToken", "exp", "casUrl"}
    status, _ = _req(locked, "GET", "/api/models/alice/m/xet-write-token/main", token="tok-bob")
    assert status == 403


def test_serve_without_auth_flags_is_token_mode_with_the_owner_token(tmp_path):
    """No flags: writes and private reads need a token; the home's owner token is accepted (test_private_default
    checks what another user's process sees)."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "deltahub.cli", "hub", "serve", "--root", str(tmp_path / "r"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert "token mode" in first and second.startswith("owner: local"), first + second
        url = type("S", (), {"url": first.split()[3]})
        assert _req(url, "POST", "/api/repos/create", {"name": "x"})[0] == 401
        from deltahub.endpoint.owner import owner_token

        assert _req(url, "POST", "/api/repos/create", {"name": "x"}, token=owner_token())[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_stale_temp_files_are_swept_on_start(tmp_path):
    from deltahub.server.storage import Store

    Store(tmp_path)
    old, fresh = tmp_path / "tmp" / "up-old", tmp_path / "tmp" / "up-fresh"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"in flight")
    os.utime(old, (0, 0))
    Store(tmp_path)
    assert not old.exists() and fresh.exists()
