"""The embedded registry attacked the way a client on loopback could: every endpoint that takes a path,
oid, revision, name or body, tried with traversal, other users' objects, other users' tokens,
malformed and oversized payloads, YAML bombs, a full disk and a killed server.

Attacks go as raw bytes over a socket (a real client would never send them, and libraries normalise
URLs); what a client would do goes through the real huggingface_hub. Every answer is checked for its
exact status, for no 5xx, and for no byte of a protected file or object (``_assert_no_leak``).
The endpoint x attack matrices are generated from the tables below.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from deltahub.server import start_server

SECRET = b"TOPSECRET-" + os.urandom(8).hex().encode()  # content of alice's private files
OUTSIDE = b"OUTSIDE-" + os.urandom(8).hex().encode()  # a file next to the store, never in any repo
LFS_SECRET = SECRET + os.urandom(3000)  # alice's private LFS object
BOB_PRIVATE = b"BOBPRIVATE-" + os.urandom(3000)  # bob's private LFS object
BOB_STAGED = b"BOBSTAGED-" + os.urandom(3000)  # uploaded to bob/pub through its ticket, never committed
PUBLIC_OBJ = b"PUBLIC-" + os.urandom(3000)  # committed to bob's public repo: anyone may reuse it
TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
PROTECTED = (SECRET, OUTSIDE, BOB_PRIVATE[:40], BOB_STAGED[:40], b"SQLite format 3", b"tok-alice")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class Registry:
    """A token-mode server on loopback and a raw HTTP/1.1 client for it."""

    def __init__(self, srv, root: Path):
        self.srv, self.root = srv, root
        self.host, port = srv.url[len("http://") :].split(":")
        self.port = int(port)

    def send_raw(self, raw: bytes) -> Answer:
        """Send ``raw`` and read one answer (to its Content-Length, or to the server's close)."""
        with socket.create_connection((self.host, self.port), timeout=30) as s:
            s.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data and (chunk := s.recv(1 << 16)):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = None if raw.startswith(b"HEAD ") else int(headers.get("content-length", -1))
            while (length is None or length < 0 or len(body) < length) and length != 0:
                if length is None or not (chunk := s.recv(1 << 16)):
                    break
                body += chunk
        return Answer(int(lines[0].split()[1]), headers, body)

    def req(
        self,
        method: str,
        target: str,
        body: bytes | dict | list | None = None,
        token: str | None = None,
        ctype: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """``target`` goes into the request line verbatim (no normalisation, no quoting)."""
        if body is not None and not isinstance(body, bytes):
            body, ctype = json.dumps(body).encode(), ctype or "application/json"
        headers = dict(headers or {})
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: {headers.pop('Host', f'{self.host}:{self.port}')}",
            "Connection: close",
        ]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if body is not None:
            lines += [f"Content-Length: {len(body)}", f"Content-Type: {ctype or 'application/octet-stream'}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

    def commit(self, repo: str, lines: list, token: str = "tok-alice", rev: str = "main") -> Answer:
        body = b"\n".join(x if isinstance(x, bytes) else json.dumps(x).encode() for x in lines)
        return self.req("POST", f"/api/models/{repo}/commit/{rev}", body, token, "application/x-ndjson")

    def temp_files(self) -> list[Path]:
        return [p for p in (self.root / "tmp").rglob("*") if p.is_file()]


def _assert_no_leak(answer: Answer, what: str) -> None:
    blob = answer.body + json.dumps(answer.headers).encode()
    for marker in PROTECTED:
        assert marker not in blob, f"{what}: leaked {marker[:20]!r}"
    assert answer.status < 500, f"{what}: {answer.status} {answer.body[:200]!r}"
    assert "\r" not in json.dumps(answer.headers) and "\n" not in "".join(answer.headers.values())


def _header(token: str | None = None) -> dict:
    return {"key": "header", "value": {"summary": "x"}}


def _file(path: str, data: bytes = b"x") -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


def _lfs(path: str, oid: str, size: int | None) -> dict:
    value = {"path": path, "algo": "sha256", "oid": oid}
    if size is not None:
        value["size"] = size
    return {"key": "lfsFile", "value": value}


def _upload(reg: Registry, repo: str, data: bytes, token: str) -> str:
    """The LFS batch + PUT a client does; returns the upload href path."""
    a = reg.req(
        "POST",
        f"/{repo}.git/info/lfs/objects/batch",
        {"operation": "upload", "objects": [{"oid": _sha(data), "size": len(data)}]},
        token,
    )
    assert a.status == 200, a.body
    href = a.json()["objects"][0]["actions"]["upload"]["href"]
    put = reg.req("PUT", href[href.index("/lfs/") :], data)
    assert put.status == 200, put.body
    return href[href.index("/lfs/") :]


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    """alice: private alice/secret (regular + LFS secrets, tag v1, branch dev), private dataset alice/dsecret,
    public alice/scratch (for write attacks); bob: public bob/pub and private bob/priv."""
    from huggingface_hub import CommitOperationAdd, HfApi

    base = tmp_path_factory.mktemp("sec")
    root = base / "reg"
    (base / "outside-secret.txt").write_bytes(OUTSIDE)
    srv = start_server(root, open_mode=False, tokens=TOKENS, orgs={"alice": ["team"]})
    (root / "outside-secret.txt").write_bytes(OUTSIDE)
    alice, bob = HfApi(endpoint=srv.url, token="tok-alice"), HfApi(endpoint=srv.url, token="tok-bob")
    alice.create_repo("alice/secret", private=True)
    alice.create_commit(
        "alice/secret",
        [
            CommitOperationAdd("s.txt", SECRET),
            CommitOperationAdd("sub/s.txt", SECRET),
            CommitOperationAdd("w.safetensors", LFS_SECRET),
        ],
        commit_message="secret",
    )
    alice.create_tag("alice/secret", tag="v1")
    alice.create_branch("alice/secret", branch="dev")
    alice.create_repo("alice/dsecret", private=True, repo_type="dataset")
    alice.upload_file(path_or_fileobj=SECRET, path_in_repo="d.txt", repo_id="alice/dsecret", repo_type="dataset")
    alice.create_repo("alice/scratch")
    bob.create_repo("bob/pub")
    bob.upload_file(path_or_fileobj=PUBLIC_OBJ, path_in_repo="pub.safetensors", repo_id="bob/pub")
    bob.create_repo("bob/priv", private=True)
    bob.upload_file(path_or_fileobj=BOB_PRIVATE, path_in_repo="p.safetensors", repo_id="bob/priv")
    alice.create_commit(
        "alice/secret", [CommitOperationAdd("pr.txt", SECRET)], commit_message="secret pr", create_pr=True
    )  # pull request #1
    alice.create_discussion("alice/secret", title="secret talk", description=SECRET.decode())  # discussion #2
    r = Registry(srv, root)
    r.private_collection = alice.create_collection("Hidden things", private=True).slug
    alice.add_collection_item(r.private_collection, "alice/secret", "model")
    r.public_collection = alice.create_collection("Open things").slug
    alice.add_collection_item(r.public_collection, "alice/scratch", "model")
    alice.add_collection_item(r.public_collection, "alice/secret", "model", note="hidden from outsiders")
    _upload(r, "bob/pub", BOB_STAGED, "tok-bob")
    yield r
    srv.stop()


# -- traversal ---------------------------------------------------------------------------------
# (name, as it goes into the URL, expected status): 400 where the server sees a traversal after its
# one decoding; 404 where it sees a harmless literal name (double encoding), which is not found.
URL_PATH_ATTACKS = [
    ("dotdot", "../../outside-secret.txt", 400),
    ("dotdot-blobs", "../../../reg/registry.db", 400),
    ("encoded", "%2e%2e/%2e%2e/outside-secret.txt", 400),
    ("encoded-slash", "..%2f..%2foutside-secret.txt", 400),
    ("double-encoded", "%252e%252e%252f%252e%252eoutside-secret.txt", 404),
    ("backslash", "..%5c..%5coutside-secret.txt", 400),
    ("absolute", "%2fetc%2fhostname", 400),
    ("nul", "s.txt%00.png", 400),
    ("drive", "C:%5cWindows", 400),
    ("crlf", "s.txt%0d%0aX-Evil:%201", 400),
    ("dot", "./s.txt", 400),
    ("inner-dotdot", "sub/../s.txt", 400),
    ("unicode", "%e2%82%ac.txt", 404),  # a valid name echoed in X-Error-Message: it must not break the header
]
URL_PATH_ENDPOINTS = [
    ("GET", "/alice/secret/resolve/main/{x}"),
    ("HEAD", "/alice/secret/resolve/main/{x}"),
    ("GET", "/datasets/alice/dsecret/resolve/main/{x}"),
    ("GET", "/api/models/alice/secret/tree/main/{x}"),
]
# single URL segments (revision, namespace, name)
SEGMENT_ATTACKS = [
    ("dotdot", "..", 400),
    ("encoded", "%2e%2e", 400),
    ("double-encoded", "%252e%252e", None),  # a literal '%2e%2e': not found (or created, for a new branch)
    ("backslash", "a%5cb", 400),
    ("nul", "a%00b", 400),
    ("crlf", "a%0d%0aX-Evil:%201", 400),
    ("control", "a%01b", 400),
    ("space", "a%20b", 400),
    ("unicode", "%e2%82%ac", None),
]
REV_ENDPOINTS = [  # (method, target, body, status for a harmless unknown revision)
    ("GET", "/api/models/alice/secret/revision/{x}", None, 404),
    ("GET", "/api/models/alice/secret/tree/{x}", None, 404),
    ("GET", "/api/models/alice/secret/tree/{x}/sub", None, 404),
    ("POST", "/api/models/alice/secret/paths-info/{x}", b"paths=s.txt", 404),
    ("GET", "/api/models/alice/secret/commits/{x}", None, 404),
    ("GET", "/alice/secret/resolve/{x}/s.txt", None, 404),
    ("HEAD", "/alice/secret/resolve/{x}/s.txt", None, 404),
    ("GET", "/datasets/alice/dsecret/resolve/{x}/d.txt", None, 404),
    ("POST", "/api/models/alice/secret/preupload/{x}", {"files": [{"path": "a.txt", "size": 1}]}, 200),
    ("GET", "/api/models/alice/secret/xet-read-token/{x}", None, 404),
    ("POST", "/api/models/alice/scratch/commit/{x}", [_header()], 404),
    ("POST", "/api/models/alice/scratch/branch/{x}", {}, 200),  # and then DELETE, in the test
    ("POST", "/api/models/alice/scratch/tag/{x}", {"tag": "t-double"}, 404),
    ("DELETE", "/api/models/alice/scratch/tag/{x}", None, 404),
]
NAME_ENDPOINTS = [  # every route with a namespace and a name; {x} replaces one of them
    ("GET", "/api/models/{ns}/{name}", None),
    ("GET", "/api/datasets/{ns}/{name}/revision/main", None),
    ("PUT", "/api/models/{ns}/{name}/settings", {"private": False}),
    ("GET", "/api/models/{ns}/{name}/xet-write-token/main", None),
    ("POST", "/api/models/{ns}/{name}/preupload/main", {"files": []}),
    ("POST", "/api/models/{ns}/{name}/commit/main", [_header()]),
    ("GET", "/api/models/{ns}/{name}/tree/main", None),
    ("POST", "/api/models/{ns}/{name}/paths-info/main", b"paths=s.txt"),
    ("GET", "/api/models/{ns}/{name}/refs", None),
    ("GET", "/api/models/{ns}/{name}/commits/main", None),
    ("POST", "/api/models/{ns}/{name}/branch/b1", {}),
    ("POST", "/api/models/{ns}/{name}/tag/main", {"tag": "t1"}),
    ("POST", "/{ns}/{name}.git/info/lfs/objects/batch", {"operation": "download", "objects": []}),
    ("POST", "/{ns}/{name}.git/info/lfs/verify", {"oid": "0" * 64, "size": 1}),
    ("GET", "/{ns}/{name}/resolve/main/s.txt", None),
    ("HEAD", "/datasets/{ns}/{name}/resolve/main/d.txt", None),
    ("GET", "/api/models/{ns}/{name}/discussions", None),
    ("GET", "/api/models/{ns}/{name}/discussions/1", None),
    ("POST", "/api/models/{ns}/{name}/discussions/1/comment", {"comment": "x"}),
    ("POST", "/api/models/{ns}/{name}/discussions/1/merge", {}),
    ("GET", "/api/models/{ns}/{name}/lfs-files", None),
    ("POST", "/api/models/{ns}/{name}/super-squash/main", {}),
    ("GET", "/api/models/{ns}/{name}/auth-check", None),
]


def _send(
    reg: Registry, method: str, target: str, body, token: str | None = "tok-alice", headers: dict | None = None
) -> Answer:
    if isinstance(body, list):  # a commit
        payload = b"\n".join(json.dumps(x).encode() for x in body)
        return reg.req(method, target, payload, token, "application/x-ndjson", headers=headers)
    if isinstance(body, bytes):
        return reg.req(method, target, body, token, "application/x-www-form-urlencoded", headers=headers)
    return reg.req(method, target, body, token, headers=headers)


@pytest.mark.parametrize("method,target", URL_PATH_ENDPOINTS, ids=[f"{m}{t}" for m, t in URL_PATH_ENDPOINTS])
@pytest.mark.parametrize("attack,fragment,status", URL_PATH_ATTACKS, ids=[a[0] for a in URL_PATH_ATTACKS])
def test_traversal_in_url_paths(reg, method, target, attack, fragment, status):
    a = reg.req(method, target.format(x=fragment), token="tok-alice")
    _assert_no_leak(a, f"{method} {target} {attack}")
    assert a.status == status, a.body
    assert "x-evil" not in a.headers


@pytest.mark.parametrize("method,target,body,unknown", REV_ENDPOINTS, ids=[f"{m}{t}" for m, t, _, _ in REV_ENDPOINTS])
@pytest.mark.parametrize("attack,fragment,status", SEGMENT_ATTACKS, ids=[a[0] for a in SEGMENT_ATTACKS])
def test_traversal_and_control_characters_in_revisions(reg, method, target, body, unknown, attack, fragment, status):
    a = _send(reg, method, target.format(x=fragment), body)
    _assert_no_leak(a, f"{method} {target} {attack}")
    assert a.status == (unknown if status is None else status), a.body
    assert "x-evil" not in a.headers
    if "/branch/" in target:  # the branch a harmless literal name created is deleted again
        a = reg.req("DELETE", target.format(x=fragment), token="tok-alice")
        assert a.status == (unknown if status is None else status), a.body


@pytest.mark.parametrize("method,target,body", NAME_ENDPOINTS, ids=[f"{m}{t}" for m, t, _ in NAME_ENDPOINTS])
@pytest.mark.parametrize("slot", ["ns", "name"])
@pytest.mark.parametrize(
    "attack,fragment,_status",
    SEGMENT_ATTACKS + [("hub-refused", "a--b", 400)],
    ids=[a[0] for a in SEGMENT_ATTACKS] + ["hub-refused"],
)
def test_traversal_in_repo_names(reg, method, target, body, slot, attack, fragment, _status):
    names = {"ns": "alice", "name": "secret", slot: fragment}
    a = _send(reg, method, target.format(**names), body)
    _assert_no_leak(a, f"{method} {target} {slot}={attack}")
    assert a.status == 400, a.body  # '%2e%2e' (double-encoded, decoded once) is no valid name either


BODY_PATH_ATTACKS = [
    "../../outside-secret.txt",
    "..\\..\\outside-secret.txt",
    "/etc/hostname",
    "a\x00b",
    "C:\\x",
    "a/../../b",
    "a//b",
    "./x",
    "x/.",
    "a\r\nb",
    "a\x7fb",
    "x" * 1200,
    "",
    "sub/" + "y" * 300,
]


def _path_bodies(p: str) -> list[tuple[str, str, str, object]]:
    """(label, method, target, body) for every endpoint that takes a file path in its body."""
    return [
        ("commit-file", "POST", "/api/models/alice/scratch/commit/main", [_header(), _file(p)]),
        (
            "commit-lfsFile",
            "POST",
            "/api/models/alice/scratch/commit/main",
            [_header(), _lfs(p, _sha(PUBLIC_OBJ), None)],
        ),
        (
            "commit-deletedFile",
            "POST",
            "/api/models/alice/scratch/commit/main",
            [_header(), {"key": "deletedFile", "value": {"path": p}}],
        ),
        (
            "commit-deletedFolder",
            "POST",
            "/api/models/alice/scratch/commit/main",
            [_header(), {"key": "deletedFolder", "value": {"path": p}}],
        ),
        ("preupload", "POST", "/api/models/alice/secret/preupload/main", {"files": [{"path": p, "size": 1}]}),
        ("paths-info-json", "POST", "/api/models/alice/secret/paths-info/main", {"paths": [p]}),
    ]


@pytest.mark.parametrize("bad", BODY_PATH_ATTACKS, ids=[repr(b[:20]) for b in BODY_PATH_ATTACKS])
def test_traversal_in_body_paths(reg, bad):
    before = reg.req("GET", "/api/models/alice/scratch", token="tok-alice").json()["sha"]
    for label, method, target, body in _path_bodies(bad):
        a = _send(reg, method, target, body)
        _assert_no_leak(a, f"{label} {bad!r}")
        assert a.status == 422, (label, a.body)  # the Hub's status for a bad path in a body (400 in a URL)
        assert "invalid path" in a.json()["error"], (label, a.body)
    a = reg.req(
        "POST",
        "/api/models/alice/secret/paths-info/main",
        b"paths=" + bad.encode().replace(b"\0", b"%00").replace(b"\r\n", b"%0d%0a"),
        "tok-alice",
        "application/x-www-form-urlencoded",
    )
    _assert_no_leak(a, f"paths-info-form {bad!r}")
    assert a.status == 422, a.body
    assert reg.req("GET", "/api/models/alice/scratch", token="tok-alice").json()["sha"] == before


def test_double_encoded_body_path_is_a_harmless_literal_name(reg):
    name = "%2e%2e/%2e%2e/outside-secret.txt"
    assert reg.commit("alice/scratch", [_header(), _file(name, b"mine")]).status == 200
    a = reg.req("GET", "/alice/scratch/resolve/main/%252e%252e/%252e%252e/outside-secret.txt")
    assert (a.status, a.body) == (200, b"mine")


# -- objects -----------------------------------------------------------------------------------
BAD_OIDS = [
    "/etc/hostname",
    "../../outside-secret.txt",
    "../registry.db",
    "A" * 64,
    "a" * 63,
    "a" * 65,
    "",
    "g" * 64,
    "a" * 62 + "/x",
    None,
    12,
    ["a" * 64],
]


@pytest.mark.parametrize("oid", BAD_OIDS, ids=[repr(o)[:24] for o in BAD_OIDS])
def test_oids_that_are_not_sha256_are_refused_everywhere(reg, oid):
    for label, a in [
        (
            "commit",
            reg.commit(
                "alice/scratch",
                [_header(), {"key": "lfsFile", "value": {"path": "leak.bin", "algo": "sha256", "oid": oid, "size": 3}}],
            ),
        ),
        (
            "batch",
            reg.req(
                "POST",
                "/alice/scratch.git/info/lfs/objects/batch",
                {"operation": "upload", "objects": [{"oid": oid, "size": 3}]},
                "tok-alice",
            ),
        ),
        ("verify", reg.req("POST", "/alice/scratch.git/info/lfs/verify", {"oid": oid, "size": 3}, "tok-alice")),
    ]:
        _assert_no_leak(a, f"{label} {oid!r}")
        assert a.status == 400, (label, a.body)
    assert reg.req("GET", "/alice/scratch/resolve/main/leak.bin", token="tok-alice").status == 404


@pytest.mark.parametrize(
    "fragment", ["%2e%2e", "..%2f..%2fregistry.db", "A" * 64, "a" * 63], ids=["dotdot", "slash", "upper", "short"]
)
def test_upload_urls_take_only_sha256(reg, fragment):
    a = reg.req("PUT", f"/lfs/upload/1/{fragment}/3?ticket=x", b"abc")
    _assert_no_leak(a, f"upload {fragment}")
    assert a.status == 400, a.body  # an encoded '/' stays inside its URL segment (asgi.py): no valid oid either
    assert reg.temp_files() == []


def test_other_repos_objects_cannot_be_claimed(reg):
    """Knowing a private object's sha256 and size must not let anyone commit, verify or skip its upload."""
    cases = [(LFS_SECRET, "alice's private LFS object"), (BOB_STAGED, "bob's uploaded, uncommitted object")]
    for data, what in cases:
        oid, size = _sha(data), len(data)
        for token, repo in [("tok-bob", "bob/pub"), ("tok-alice", "alice/scratch")]:
            if data is LFS_SECRET and token == "tok-alice":
                continue  # alice may reuse her own object
            if data is BOB_STAGED and token == "tok-bob":
                continue
            for size_field in (size, None):
                a = reg.commit(repo, [_header(), _lfs("stolen.bin", oid, size_field)], token)
                _assert_no_leak(a, what)
                assert a.status == 422, (what, a.body)
            a = reg.req(
                "POST",
                f"/{repo}.git/info/lfs/objects/batch",
                {"operation": "upload", "objects": [{"oid": oid, "size": size}]},
                token,
            )
            assert a.status == 200 and "actions" in a.json()["objects"][0], (what, "batch said already stored")
            a = reg.req("POST", f"/{repo}.git/info/lfs/verify", {"oid": oid, "size": size}, token)
            assert a.status == 404 and a.headers.get("x-error-code") is None, (what, a.body)
            assert reg.req("GET", f"/{repo}/resolve/main/stolen.bin", token=token).status == 404
    # the old global verify endpoint is gone
    assert reg.req("POST", "/lfs/verify", {"oid": _sha(LFS_SECRET), "size": len(LFS_SECRET)}).status == 404
    # an upload ticket is bound to its repo: bob's ticket does not upload into alice's repo
    data = os.urandom(100)
    a = reg.req(
        "POST",
        "/bob/pub.git/info/lfs/objects/batch",
        {"operation": "upload", "objects": [{"oid": _sha(data), "size": 100}]},
        "tok-bob",
    )
    href = a.json()["objects"][0]["actions"]["upload"]["href"]
    path = href[href.index("/lfs/") :]
    scratch_id = str(reg.srv._server.config.app.state.hub.store.get_repo("model", "alice", "scratch").id)
    parts = path.split("/")
    forged = "/".join(parts[:3] + [scratch_id] + parts[4:])
    assert reg.req("PUT", forged, data).status == 403
    assert reg.req("PUT", path.split("?")[0] + "?ticket=%C3%A9", data).status == 403  # a non-ASCII ticket


def test_public_objects_may_be_reused_and_wrong_sizes_are_refused(reg):
    oid, size = _sha(PUBLIC_OBJ), len(PUBLIC_OBJ)
    a = reg.req(
        "POST",
        "/alice/scratch.git/info/lfs/objects/batch",
        {"operation": "upload", "objects": [{"oid": oid, "size": size}]},
        "tok-alice",
    )
    assert "actions" not in a.json()["objects"][0]  # committed in a repo alice can read: no upload needed
    assert reg.commit("alice/scratch", [_header(), _lfs("reused.bin", oid, size + 1)]).status == 422
    assert reg.commit("alice/scratch", [_header(), _lfs("reused.bin", oid, None)]).status == 200
    a = reg.req("GET", "/alice/scratch/resolve/main/reused.bin", token="tok-alice")
    assert (a.status, a.body) == (200, PUBLIC_OBJ)


# -- private repos -----------------------------------------------------------------------------
PRIVATE_ENDPOINTS = [  # every endpoint that reads (or writes) a repo, on alice's private repos
    ("GET", "/api/models/alice/secret", None),
    ("GET", "/api/models/alice/secret/revision/v1", None),
    ("GET", "/api/datasets/alice/dsecret", None),
    ("GET", "/api/models/alice/secret/tree/main", None),
    ("GET", "/api/models/alice/secret/tree/main/sub", None),
    ("GET", "/api/datasets/alice/dsecret/tree/main", None),
    ("POST", "/api/models/alice/secret/paths-info/main", b"paths=s.txt&paths=sub"),
    ("POST", "/api/models/alice/secret/paths-info/main", {"paths": ["s.txt", "w.safetensors"]}),
    ("GET", "/alice/secret/resolve/main/s.txt", None),
    ("HEAD", "/alice/secret/resolve/main/s.txt", None),
    ("GET", "/alice/secret/resolve/v1/w.safetensors", None),
    ("HEAD", "/alice/secret/resolve/dev/w.safetensors", None),
    ("GET", "/datasets/alice/dsecret/resolve/main/d.txt", None),
    ("HEAD", "/datasets/alice/dsecret/resolve/main/d.txt", None),
    ("GET", "/api/models/alice/secret/commits/main", None),
    ("GET", "/api/models/alice/secret/refs", None),
    ("GET", "/api/datasets/alice/dsecret/refs", None),
    (
        "POST",
        "/alice/secret.git/info/lfs/objects/batch",
        {"operation": "download", "objects": [{"oid": _sha(LFS_SECRET), "size": len(LFS_SECRET)}]},
    ),
    (
        "POST",
        "/alice/secret.git/info/lfs/objects/batch",
        {"operation": "upload", "objects": [{"oid": _sha(LFS_SECRET), "size": len(LFS_SECRET)}]},
    ),
    ("POST", "/datasets/alice/dsecret.git/info/lfs/objects/batch", {"operation": "upload", "objects": []}),
    ("POST", "/alice/secret.git/info/lfs/verify", {"oid": _sha(LFS_SECRET), "size": len(LFS_SECRET)}),
    ("POST", "/api/models/alice/secret/preupload/main", {"files": [{"path": "s.txt", "size": 1}]}),
    ("GET", "/api/models/alice/secret/xet-read-token/main", None),
    ("POST", "/api/models/alice/secret/commit/main", [_header(), {"key": "deletedFile", "value": {"path": "s.txt"}}]),
    ("PUT", "/api/models/alice/secret/settings", {"private": False}),
    ("POST", "/api/models/alice/secret/branch/stolen", {}),
    ("DELETE", "/api/models/alice/secret/branch/dev", None),
    ("POST", "/api/models/alice/secret/tag/main", {"tag": "stolen"}),
    ("DELETE", "/api/models/alice/secret/tag/v1", None),
]
# pull requests and discussions of the private repo: as invisible as the repo
PRIVATE_READS = [
    ("GET", "/api/models/alice/secret/discussions", None),
    ("GET", "/api/models/alice/secret/discussions/1?diff=1", None),
    ("GET", "/api/models/alice/secret/discussions/2", None),
    ("GET", "/api/models/alice/secret/revision/refs%2Fpr%2F1", None),
    ("GET", "/api/models/alice/secret/tree/refs%2Fpr%2F1", None),
    ("GET", "/api/models/alice/secret/commits/refs%2Fpr%2F1", None),
    ("GET", "/alice/secret/resolve/refs%2Fpr%2F1/pr.txt", None),
    ("HEAD", "/alice/secret/resolve/refs%2Fpr%2F1/pr.txt", None),
    ("POST", "/api/models/alice/secret/paths-info/refs%2Fpr%2F1", {"paths": ["pr.txt"], "expand": True}),
    ("GET", "/api/models/alice/secret/refs?include_prs=1", None),
    ("GET", "/api/models/alice/secret/tree/main?expand=true", None),
    ("GET", "/api/models/alice/secret/lfs-files", None),
    ("GET", "/api/models/alice/secret/auth-check", None),
]
PRIVATE_WRITES = [
    ("POST", "/api/models/alice/secret/discussions", {"title": "stolen", "description": "x"}),
    ("POST", "/api/models/alice/secret/discussions/1/comment", {"comment": "x"}),
    ("POST", "/api/models/alice/secret/discussions/2/status", {"status": "closed"}),
    ("POST", "/api/models/alice/secret/discussions/2/title", {"title": "stolen"}),
    ("POST", "/api/models/alice/secret/discussions/1/merge", {}),
    ("POST", f"/api/models/alice/secret/discussions/2/comment/{'0' * 24}/edit", {"content": "x"}),
    ("POST", f"/api/models/alice/secret/discussions/2/comment/{'0' * 24}/hide", None),
    ("POST", "/api/models/alice/secret/commit/main?create_pr=1", [_header(), _file("pr2.txt")]),
    ("POST", "/api/models/alice/secret/commit/refs%2Fpr%2F1", [_header(), _file("pr3.txt")]),
    ("POST", "/api/models/alice/secret/lfs-files/batch", {"deletions": {"sha": [_sha(LFS_SECRET)]}}),
    ("POST", "/api/models/alice/secret/super-squash/main", {"message": "x"}),
    ("GET", "/api/models/alice/secret/auth-check/write", None),
    ("POST", "/api/repos/move", {"fromRepo": "alice/secret", "toRepo": "bob/stolen"}),
]
PRIVATE_ENDPOINTS += PRIVATE_READS + PRIVATE_WRITES
OUTSIDERS = [None, "tok-bob", "tok-nobody"]


@pytest.mark.parametrize(
    "method,target,body",
    PRIVATE_ENDPOINTS,
    ids=[f"{m}{t}{'-json' if isinstance(b, dict) else ''}" for m, t, b in PRIVATE_ENDPOINTS],
)
@pytest.mark.parametrize("token", OUTSIDERS, ids=["no-token", "other-user", "bogus-token"])
def test_private_repos_are_invisible_to_outsiders(reg, method, target, body, token):
    a = _send(reg, method, target, body, token)
    _assert_no_leak(a, f"{method} {target} as {token}")
    assert (a.status, a.headers.get("x-error-code")) == (404, "RepoNotFound"), a.body
    assert b"secret" not in a.body.replace(b"alice/secret", b"").replace(b"alice/dsecret", b"")


LISTINGS = [
    "/api/models",
    "/api/models?author=alice",
    "/api/models?search=secret",
    "/api/models?full=true",
    "/api/models?cardData=true&limit=1000",
    "/api/datasets?author=alice",
    "/api/datasets?search=dsecret",
    "/api/models?filter=lora",
    "/api/models?sort=id&direction=1",
]


@pytest.mark.parametrize("target", LISTINGS)
@pytest.mark.parametrize("token", OUTSIDERS, ids=["no-token", "other-user", "bogus-token"])
def test_listings_and_search_hide_private_repos(reg, target, token):
    a = reg.req("GET", target, token=token)
    _assert_no_leak(a, f"{target} as {token}")
    assert a.status == 200
    ids = {item["id"] for item in a.json()}
    assert not ids & {"alice/secret", "alice/dsecret", "bob/priv"} - ({"bob/priv"} if token == "tok-bob" else set())
    mine = reg.req("GET", target, token="tok-alice").json()
    assert {"alice/secret", "alice/dsecret"} & {i["id"] for i in mine} or "search=" in target or "filter" in target


def test_owner_still_reads_everything(reg):
    """The same endpoints answer the owner (so the 404s above are about permission, not broken routes)."""
    for method, target, body in PRIVATE_ENDPOINTS:
        if (
            method in ("DELETE", "PUT")
            or "commit/" in target
            or "branch" in target
            or "tag/" in target
            or (method, target, body) in PRIVATE_WRITES
        ):
            continue
        a = _send(reg, method, target, body, "tok-alice")
        assert a.status in (200, 501), (method, target, a.body)


@pytest.mark.parametrize("token", OUTSIDERS, ids=["no-token", "other-user", "bogus-token"])
def test_collections_never_show_a_private_repo_or_collection(reg, token):
    """A private collection is a 404 for outsiders; a public one lists only what they may see; listings by owner or
    by item leave private things out; outsiders cannot change alice's collections or collect her private repo."""
    for target in (
        f"/api/collections/{reg.private_collection}",
        "/api/collections?owner=alice",
        f"/api/collections/{reg.public_collection}",
        "/api/collections?item=models/alice/secret",
        "/api/collections?item=models/alice/scratch",
    ):
        a = reg.req("GET", target, token=token)
        _assert_no_leak(a, f"{target} as {token}")
        assert b"alice/secret" not in a.body and b"Hidden things" not in a.body and b"hidden from" not in a.body
        if target.endswith(reg.private_collection):
            assert a.status == 404, a.body
        else:
            assert a.status == 200, a.body
    assert [
        i["id"] for i in reg.req("GET", f"/api/collections/{reg.public_collection}", token=token).json()["items"]
    ] == ["alice/scratch"]
    assert reg.req("GET", "/api/collections?item=models/alice/secret", token=token).json() == []
    writes = [
        ("PATCH", "", {"title": "stolen"}),
        ("DELETE", "", None),
        ("POST", "/items", {"item": {"id": "bob/pub", "type": "model"}}),
    ]
    for slug, status in ((reg.private_collection, 404), (reg.public_collection, 401 if token != "tok-bob" else 403)):
        for method, tail, body in writes:
            a = reg.req(method, f"/api/collections/{slug}{tail}", body, token)
            _assert_no_leak(a, f"{method} {slug}{tail} as {token}")
            assert a.status in (status, 403), (method, tail, a.body)
    if token == "tok-bob":
        mine = reg.req("POST", "/api/collections", {"title": f"bob's {token}"}, token).json()["slug"]
        a = reg.req("POST", f"/api/collections/{mine}/items", {"item": {"id": "alice/secret", "type": "model"}}, token)
        assert a.status == 404 and b"secret" not in a.body.replace(b"alice/secret", b""), a.body
    mine = reg.req("GET", f"/api/collections/{reg.public_collection}", token="tok-alice").json()
    assert [i["id"] for i in mine["items"]] == ["alice/scratch", "alice/secret"]  # the owner sees both


def test_numbers_too_big_for_sqlite_in_urls_are_refused_not_500(reg):
    huge = "9" * 30
    for method, target, body, status in [
        ("GET", f"/api/models/alice/scratch/discussions/{huge}", None, 404),
        ("POST", f"/api/models/alice/scratch/discussions/{huge}/comment", {"comment": "x"}, 404),
        ("POST", f"/api/models/alice/scratch/discussions/{huge}/comment/{'0' * 24}/edit", {"content": "x"}, 404),
        ("GET", f"/api/models/alice/scratch/revision/refs%2Fpr%2F{huge}", None, 404),
        ("POST", f"/api/models/alice/scratch/commit/refs%2Fpr%2F{huge}", [_header()], 404),
        ("PUT", f"/lfs/upload/{huge}/{'0' * 64}/3?ticket=x", b"abc", 403),
        ("GET", f"/api/models/alice/scratch/discussions?p={huge[:12]}", None, 200),
    ]:
        a = _send(reg, method, target, body)
        _assert_no_leak(a, target)
        assert a.status == status, (target, a.body)


def test_whoami_needs_a_valid_token(reg):
    for token in (None, "tok-nobody"):
        a = reg.req("GET", "/api/whoami-v2", token=token)
        assert (a.status, a.json()["error"]) == (401, "Invalid credentials in Authorization header")


# -- malformed payloads ------------------------------------------------------------------------
JSON_ENDPOINTS = [  # (method, target, a valid body)
    ("POST", "/api/repos/create", {"name": "x-new", "private": True}),
    ("DELETE", "/api/repos/delete", {"name": "does-not-exist"}),
    ("PUT", "/api/models/alice/scratch/settings", {"private": False}),
    ("POST", "/api/validate-yaml", {"content": "---\na: 1\n---\n"}),
    ("POST", "/api/models/alice/scratch/preupload/main", {"files": [{"path": "a.txt", "size": 1, "sample": ""}]}),
    (
        "POST",
        "/alice/scratch.git/info/lfs/objects/batch",
        {
            "operation": "upload",
            "objects": [{"oid": "0" * 64, "size": 1}],
            "transfers": ["basic"],
            "hash_algo": "sha256",
            "ref": {"name": "main"},
        },
    ),
    ("POST", "/alice/scratch.git/info/lfs/verify", {"oid": "0" * 64, "size": 1}),
    ("POST", "/api/models/alice/scratch/paths-info/main", {"paths": ["a.txt"], "expand": False}),
    ("POST", "/api/models/alice/scratch/branch/b-json", {"startingPoint": "main"}),
    ("POST", "/api/models/alice/scratch/tag/main", {"tag": "t-json", "message": "m"}),
    ("POST", "/api/repos/move", {"fromRepo": "alice/does-not-exist", "toRepo": "alice/elsewhere", "type": "model"}),
    ("POST", "/api/models/alice/scratch/discussions", {"title": "a title", "description": "d", "pullRequest": False}),
    ("POST", "/api/models/alice/scratch/discussions/1/comment", {"comment": "c"}),
    ("POST", "/api/models/alice/scratch/discussions/1/status", {"status": "closed", "comment": "c"}),
    ("POST", "/api/models/alice/scratch/discussions/1/title", {"title": "new title"}),
    ("POST", "/api/models/alice/scratch/lfs-files/batch", {"deletions": {"sha": ["0" * 64], "rewriteHistory": False}}),
    ("POST", "/api/models/alice/scratch/super-squash/no-such-branch", {"message": "m"}),
    ("POST", "/api/collections", {"title": "json coll", "namespace": "alice", "description": "d", "private": False}),
]
WRONG = {"list": [], "string": "x", "number": 1, "float": 1.5, "null": None, "true": True, "object": {}}


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


def _field_mutations(body: dict) -> list[tuple[str, object]]:
    """The valid body with one (nested) field replaced by each JSON type it does not accept."""
    out = []
    for key, value in body.items():
        for tname, wrong in WRONG.items():
            if type(wrong) is type(value):
                continue
            if wrong is None and key in (
                "private",
                "startingPoint",
                "message",
                "expand",
                "transfers",
                "hash_algo",
                "ref",
                "sample",
                "description",
                "comment",
                "namespace",
                "type",
            ):
                continue  # optional: null means absent
            if tname == "object" and key == "ref":
                continue
            out.append((f"{key}={tname}", {**body, key: wrong}))
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for sub, inner in value[0].items():
                for tname, wrong in WRONG.items():
                    if type(wrong) is type(inner) or (wrong is None and sub == "sample"):
                        continue
                    out.append((f"{key}[0].{sub}={tname}", {**body, key: [{**value[0], sub: wrong}]}))
    return out


WHOLE_BODIES = {
    **{k: json.dumps(v).encode() for k, v in WRONG.items() if k != "object"},
    "deep": _deep(100_000),
    "deep-unclosed": b"[" * 100_000,
    "deep-object": b'{"a":' * 50_000,
    "invalid": b"{",
    "nan": b'{"size": NaN}',
    "not-utf8": b'{"name": "\xff\xfe"}',
    "surrogate": b'{"name": "\\ud800", "paths": ["\\ud800"], "content": "\\ud800"}',
    "huge-int": b'{"size": 1' + b"0" * 5000 + b"}",
}


@pytest.mark.parametrize("method,target,valid", JSON_ENDPOINTS, ids=[t for _, t, _ in JSON_ENDPOINTS])
def test_malformed_json_bodies_are_400(reg, method, target, valid):
    cases = list(WHOLE_BODIES.items()) + [(k, json.dumps(v).encode()) for k, v in _field_mutations(valid)]
    for label, raw in cases:
        a = reg.req(method, target, raw, "tok-alice", "application/json")
        _assert_no_leak(a, f"{target} {label}")
        assert a.status == 400, (label, a.body[:300])
        assert a.json().get("error") or a.json().get("errors"), label
    assert reg.req(method, target, valid, "tok-alice").status in (200, 404)  # the valid body still works


def _line_mutations() -> list[tuple[str, bytes]]:
    """Each field of each commit line kind replaced by each JSON type it does not accept."""
    lines = {
        "header": {"summary": "s", "description": "d", "parentCommit": "abcdef1"},
        "file": {"path": "f.txt", "content": "eA==", "encoding": "base64"},
        "lfsFile": {"path": "l.bin", "algo": "sha256", "oid": _sha(PUBLIC_OBJ), "size": len(PUBLIC_OBJ)},
        "deletedFile": {"path": "f.txt"},
        "deletedFolder": {"path": "d/"},
    }
    optional = {"summary", "description", "parentCommit", "encoding", "algo", "size"}
    out = []
    for key, value in lines.items():
        for tname, wrong in WRONG.items():
            if tname != "object":
                out.append((f"{key}.value={tname}", {"key": key, "value": wrong}))
            for field, good in value.items():
                if type(wrong) is type(good) or (wrong is None and field in optional):
                    continue
                out.append((f"{key}.{field}={tname}", {"key": key, "value": {**value, field: wrong}}))
    for tname, wrong in WRONG.items():
        out.append((f"key={tname}", {"key": wrong, "value": {"path": "x"}}))
        if tname != "object":
            out.append((f"line={tname}", wrong))
    out.append(("key=unknown", {"key": "copyFile", "value": {"path": "x"}}))
    return [(label, json.dumps(line).encode()) for label, line in out]


LINE_ATTACKS = _line_mutations() + [
    ("bad-base64", json.dumps(_file("f.txt")).replace("eA==", "%%%not base64").encode()),
    ("bad-padding", json.dumps(_file("f.txt")).replace("eA==", "eA=").encode()),
    ("bad-encoding", json.dumps({"key": "file", "value": {"path": "f", "content": "x", "encoding": "rot13"}}).encode()),
    (
        "bad-algo",
        json.dumps(
            _lfs("l.bin", _sha(PUBLIC_OBJ), None) | {"value": {"path": "l", "oid": _sha(PUBLIC_OBJ), "algo": "md5"}}
        ).encode(),
    ),
    ("negative-size", json.dumps(_lfs("l.bin", _sha(PUBLIC_OBJ), -1)).encode()),
    ("huge-size", json.dumps(_lfs("l.bin", _sha(PUBLIC_OBJ), 2**70)).encode()),
    ("header.parentCommit=path", json.dumps({"key": "header", "value": {"parentCommit": "../main"}}).encode()),
    ("deep", _deep(100_000)),
    ("invalid", b"{"),
    ("not-utf8", b'{"key": "\xff"}'),
    ("surrogate-path", b'{"key": "file", "value": {"path": "\\udc00", "content": ""}}'),
]


@pytest.mark.parametrize("label,line", LINE_ATTACKS, ids=[x[0] for x in LINE_ATTACKS])
def test_malformed_commit_lines_are_400_and_change_nothing(reg, label, line):
    before = reg.req("GET", "/api/models/alice/scratch", token="tok-alice").json()["sha"]
    header = json.dumps(_header()).encode()
    body = line if label.startswith("header.") else header + b"\n" + line
    a = reg.req("POST", "/api/models/alice/scratch/commit/main", body, "tok-alice", "application/x-ndjson")
    _assert_no_leak(a, label)
    assert a.status == 400, a.body[:300]
    assert reg.req("GET", "/api/models/alice/scratch", token="tok-alice").json()["sha"] == before


def test_commit_structure_is_checked(reg):
    header, add = json.dumps(_header()).encode(), json.dumps(_file("f.txt")).encode()
    for label, body in [
        ("empty", b""),
        ("no header", add),
        ("header twice", header + b"\n" + header),
        ("header last", add + b"\n" + header),
        ("blank", b"\n\n\n"),
    ]:
        a = reg.req("POST", "/api/models/alice/scratch/commit/main", body, "tok-alice", "application/x-ndjson")
        assert a.status == 400, (label, a.body)
    a = reg.req("POST", "/api/models/alice/scratch/commit/main", header, "tok-alice", "application/json")
    assert a.status == 400 and "NDJSON" in a.json()["error"]


# -- oversized requests ------------------------------------------------------------------------
def test_oversized_requests_get_413_414_431(reg, monkeypatch):
    from deltahub.server import payloads

    cases = [
        ("url", reg.req("GET", "/api/models/alice/secret/tree/main/" + "a/" * 9000), 414),
        ("one header", reg.req("GET", "/api/models", headers={"X-Big": "a" * 100_000}), 431),
        ("endless header", reg.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3_000_000 + b"\r\n\r\n"), 431),
        ("many headers", reg.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 20_000 + b"\r\n"), 431),
        (
            "declared json body",
            reg.send_raw(
                b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                b"tok-alice\r\nContent-Length: 99999999999\r\n\r\n"
            ),
            413,
        ),
        (
            "declared commit body",
            reg.send_raw(
                b"POST /api/models/alice/scratch/commit/main HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer tok-alice\r\nContent-Type: application/x-ndjson"
                b"\r\nContent-Length: 99999999999\r\n\r\n"
            ),
            413,
        ),
        ("upload bigger than its oid", reg.req("PUT", f"/lfs/upload/1/{'0' * 64}/{2**60}?ticket=x", b"x"), 413),
        (
            "bad content-length",
            reg.send_raw(b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            400,
        ),
        ("bad host", reg.req("POST", "/api/repos/create", {"name": "h"}, "tok-alice", headers={"Host": "a b"}), 400),
        ("range", reg.req("GET", "/bob/pub/resolve/main/pub.safetensors", headers={"Range": "bytes=abc"}), 400),
        (
            "range past end",
            reg.req("GET", "/bob/pub/resolve/main/pub.safetensors", headers={"Range": "bytes=99999999-"}),
            416,
        ),
        (
            "too many list items",
            reg.req("POST", "/api/models/alice/secret/paths-info/main", {"paths": ["a"] * 10_001}, "tok-alice"),
            400,
        ),
        ("bad limit", reg.req("GET", "/api/models?limit=-1"), 400),
        ("bad cursor", reg.req("GET", "/api/models?cursor=abc"), 400),
        ("superscript limit", reg.req("GET", "/api/models?limit=%C2%B2"), 400),  # '²'.isdigit() is True
    ]
    monkeypatch.setattr(payloads, "MAX_COMMIT_LINES", 1000)
    monkeypatch.setattr(payloads, "MAX_COMMIT_LINE_BYTES", 100_000)
    cases += [
        ("commit lines", reg.commit("alice/scratch", [_header()] + [_file(f"n{i}") for i in range(1001)]), 413),
        ("commit line length", reg.commit("alice/scratch", [_header(), _file("big", b"x" * 80_000)]), 413),
    ]
    for label, a, status in cases:
        _assert_no_leak(a, label)
        assert a.status == status, (label, a.body[:200])
    assert reg.temp_files() == []


# -- cards ---------------------------------------------------------------------------------------
BOMB = (
    '---\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
        for i in range(8)
    )
    + "---\n# bomb\n"
)


@pytest.mark.parametrize(
    "card,label",
    [
        (BOMB, "billion laughs"),
        ("---\nx: &x [*x]\n---\n", "recursive alias"),
        ("---\nx: " + "[" * 100_000 + "]" * 100_000 + "\n---\n", "deep flow nesting"),
        ("---\n" + "".join(" " * i + f"k{i}:\n" for i in range(400)) + "---\n", "deep block nesting"),
        ("---\nx: " + "a" * (1024**2 + 10) + "\n---\n", "over 1 MB"),
        ("---\n" + "".join(f"k{i}: [{', '.join(['v'] * 200)}]\n" for i in range(30)) + "---\n", "too many nodes"),
    ],
    ids=["billion-laughs", "recursive", "deep", "deep-block", "big", "nodes"],
)
def test_yaml_bombs_in_cards_are_refused_and_info_stays_small(reg, card, label, monkeypatch):
    from deltahub.server import tags

    monkeypatch.setattr(tags, "MAX_CARD_NODES", 5000)  # 6,000 real nodes parse faster than 100,000
    assert len(BOMB) < 600
    before = reg.req("GET", "/api/models/alice/scratch", token="tok-alice")
    t = time.perf_counter()
    for rev in ("main", "dev-card"):
        if rev != "main":
            reg.req("POST", f"/api/models/alice/scratch/branch/{rev}", {}, "tok-alice")
        a = reg.commit("alice/scratch", [_header(), _file("README.md", card.encode())], rev=rev)
        assert a.status == 400 and "README.md metadata" in a.json()["error"], (label, a.body[:200])
    a = reg.req("POST", "/api/validate-yaml", {"content": card}, "tok-alice")
    assert a.status == 400 and a.json()["errors"], label
    info = reg.req("GET", "/api/models/alice/scratch", token="tok-alice")
    assert info.status == 200 and len(info.body) < len(before.body) + 100 and time.perf_counter() - t < 10


def test_cards_with_small_aliases_and_dates_still_work(reg):
    card = "---\nbase: &b org/base\nbase_model: *b\ndate: 2024-01-01\n2024-02-02: key is a date\ntags: [x]\n---\n"
    assert reg.commit("alice/scratch", [_header(), _file("README.md", card.encode())]).status == 200
    assert reg.commit("alice/scratch", [_header(), _file("other.txt")]).status == 200
    info = reg.req("GET", "/api/models/alice/scratch", token="tok-alice").json()
    assert info["cardData"]["base_model"] == "org/base" and info["cardData"]["date"] == "2024-01-01"
    assert "base_model:org/base" in info["tags"]
    sha = reg.req("GET", "/api/models/alice/scratch/commits/main", token="tok-alice").json()[1]["id"]
    old = reg.req("GET", f"/api/models/alice/scratch/revision/{sha}", token="tok-alice")
    assert old.status == 200 and old.json()["cardData"]["date"] == "2024-01-01"


# -- names ---------------------------------------------------------------------------------------
BAD_REPO_NAMES = [
    "a--b",
    "ab-",
    "ab.",
    "-ab",
    ".ab",
    "a..b",
    "a\nb",
    "a\rb",
    "x" * 97,
    "a.git",
    "café",
    "a b",
    "a/b",
    "",
    "..",
    "a\x00b",
]
BAD_REF_NAMES = [
    "a..b",
    "a b",
    "a~b",
    "a^b",
    "a:b",
    "a?b",
    "a*b",
    "a[b",
    "a\\b",
    ".a",
    "a.lock",
    "a/",
    "/a",
    "a//b",
    "@",
    "a@{b",
    "a.",
    "a\r\nb",
    "a\x7fb",
    "x" * 256,
    "a/.b",
]


def test_repo_names_follow_the_hub(reg):
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    for name in BAD_REPO_NAMES:
        for field in ("name", "organization"):
            body = {"name": "ok", field: name}
            a = reg.req("POST", "/api/repos/create", body, "tok-alice")
            _assert_no_leak(a, repr(name))
            assert a.status == 400, (name, a.body)
            a = reg.req("DELETE", "/api/repos/delete", body, "tok-alice")
            assert a.status == 400, (name, a.body)
        if name and "/" not in name:  # the client refuses the same names, and says the same
            with pytest.raises(HFValidationError) as exc:
                validate_repo_id(f"alice/{name}")
            assert (
                exc.value.args[0].split(":")[0]
                in reg.req("POST", "/api/repos/create", {"name": name}, "tok-alice").json()["error"]
            )
    for name in ("_a", "a_", "a.b-c_d", "A1", "x" * 96):
        assert reg.req("POST", "/api/repos/create", {"name": name}, "tok-alice").status == 200, name


def test_branch_and_tag_names_follow_git(reg):
    for name in BAD_REF_NAMES:
        a = reg.req("POST", "/api/models/alice/scratch/tag/main", {"tag": name}, "tok-alice")
        _assert_no_leak(a, repr(name))
        assert a.status == 400, (name, a.body)
        a = reg.req("POST", "/api/models/alice/scratch/branch/main", {"startingPoint": name}, "tok-alice")
        assert a.status == 400, (name, a.body)
    for name in ("feature-1", "v1.0", "release_2", "a@b"):
        assert reg.req("POST", "/api/models/alice/scratch/tag/main", {"tag": name}, "tok-alice").status == 200, name
        assert reg.req("POST", f"/api/models/alice/scratch/branch/{name}", {}, "tok-alice").status == 200, name


def test_crlf_in_a_revision_gets_an_answer(reg):
    """It used to drop the connection: the revision went into X-Error-Message, and uvicorn refused the header."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    a = reg.req("GET", "/alice/secret/resolve/main%0d%0aSet-Cookie:%20x=1/s.txt", token="tok-alice")
    assert a.status == 400 and "set-cookie" not in a.headers and "\\r\\n" in a.headers["x-error-message"]
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=reg.srv.url, token="tok-alice").model_info("alice/secret", revision="main\r\nx")
    assert exc.value.response.status_code == 400


# -- faults --------------------------------------------------------------------------------------
def test_client_disconnect_mid_upload_leaves_no_temp_file(reg):
    data = os.urandom(2_000_000)
    a = reg.req(
        "POST",
        "/alice/scratch.git/info/lfs/objects/batch",
        {"operation": "upload", "objects": [{"oid": _sha(data), "size": len(data)}]},
        "tok-alice",
    )
    href = a.json()["objects"][0]["actions"]["upload"]["href"]
    for target, head in [
        (href[href.index("/lfs/") :], b""),
        (
            "/api/models/alice/scratch/commit/main",
            b"Authorization: Bearer tok-alice\r\nContent-Type: application/x-ndjson\r\n",
        ),
    ]:
        s = socket.create_connection((reg.host, reg.port))
        s.sendall(
            f"{'PUT' if 'lfs' in target else 'POST'} {target} HTTP/1.1\r\nHost: x\r\n".encode()
            + head
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[:1_000_000]
        )
        deadline = time.monotonic() + 10
        while not reg.temp_files() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reg.temp_files(), "the upload never reached a temp file"
        s.close()
        deadline = time.monotonic() + 10
        while reg.temp_files() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reg.temp_files() == [], target


@pytest.fixture
def tiny_disk(tmp_path):
    """A 24 MB tmpfs mounted for this test (skipped where this process cannot mount)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def _fill(folder: Path) -> Path:
    """Fill the disk under ``folder`` to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_disk_full_is_507_with_the_reason_and_reads_keep_working(tiny_disk, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    root = tiny_disk / "reg"
    srv = start_server(root, open_mode=False, tokens=TOKENS)
    try:
        api = HfApi(endpoint=srv.url, token="tok-alice")
        api.create_repo("alice/full")
        data = os.urandom(2_000_000)
        api.upload_file(path_or_fileobj=data, path_in_repo="w.safetensors", repo_id="alice/full")
        api.upload_file(path_or_fileobj=b"small", path_in_repo="s.txt", repo_id="alice/full")
        reg = Registry(srv, root)
        later = os.urandom(1_000_000)
        batch = reg.req(
            "POST",
            "/alice/full.git/info/lfs/objects/batch",
            {"operation": "upload", "objects": [{"oid": _sha(later), "size": len(later)}]},
            "tok-alice",
        )
        href = batch.json()["objects"][0]["actions"]["upload"]["href"]
        db = sqlite3.connect(root / "registry.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # so that the next SQLite write needs new disk blocks
        db.close()
        filler = _fill(tiny_disk)

        want = f"registry disk full: 0 MB free under {root}"
        with pytest.raises(HfHubHTTPError) as exc:  # a regular file travels in the commit body
            api.upload_file(path_or_fileobj=os.urandom(5000), path_in_repo="r.txt", repo_id="alice/full")
        assert exc.value.response.status_code == 507 and want in str(exc.value)
        with pytest.raises(Exception) as exc:  # an LFS file: refused at the batch step, with the reason
            api.upload_file(path_or_fileobj=os.urandom(100_000), path_in_repo="x.safetensors", repo_id="alice/full")
        assert want in str(exc.value)
        a = reg.req("PUT", href[href.index("/lfs/") :], later)  # a ticket from before the disk filled up
        assert a.status == 507 and a.json()["error"] == want
        with pytest.raises(HfHubHTTPError) as exc:  # no file to write: only SQLite has to grow
            api.create_branch("alice/full", branch="dev")
        assert exc.value.response.status_code == 507 and want in str(exc.value)

        assert api.model_info("alice/full").sha  # reads keep working
        assert api.list_repo_files("alice/full") == [".gitattributes", "s.txt", "w.safetensors"]
        assert [m.id for m in api.list_models(author="alice")] == ["alice/full"]
        got = hf_hub_download(
            "alice/full", "w.safetensors", endpoint=srv.url, token="tok-alice", cache_dir=tmp_path / "cache"
        )
        assert Path(got).read_bytes() == data
        assert reg.temp_files() == []

        filler.unlink()
        api.upload_file(path_or_fileobj=b"after", path_in_repo="r.txt", repo_id="alice/full")
        assert reg.req("PUT", href[href.index("/lfs/") :], later).status == 200
    finally:
        srv.stop()


def test_killed_server_leaves_no_temp_files_and_spares_live_ones(tmp_path):
    """A process killed mid-upload leaves a locked folder; the next start removes it, never a live one."""
    root = tmp_path / "reg"
    code = (
        "import sys, time; from deltahub.server.storage import Store; s = Store(sys.argv[1]);"
        "fd, p = s.scratch.new_file(); open(p, 'wb').write(b'partial'); print(p, flush=True); time.sleep(60)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    try:
        paths = [Path(p.stdout.readline().strip()) for p in procs]
        assert all(p.is_file() for p in paths)
        procs[0].kill()
        procs[0].wait()
        from deltahub.server.storage import Store

        store = Store(root)  # a new server start: sweeps the dead process's folder only
        assert not paths[0].exists() and not paths[0].parent.exists()
        assert paths[1].is_file()  # the live process's upload is untouched
        store.close()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    Store(root).close()
    assert [p for p in (root / "tmp").rglob("*")] == []


def test_processes_opening_a_new_registry_at_once_all_start(tmp_path):
    """Processes opening new roots at the same instant all start: two first opens switching to WAL together
    made one fail at once with "database is locked" (SQLite skips its busy wait to avoid a deadlock; seen in CI)."""
    code = (
        "import sys, time; from deltahub.server.storage import Store\n"
        "start = float(sys.argv[1])\n"
        "for root in sys.argv[2:]:\n"
        "    start += 0.3; time.sleep(max(0.0, start - time.time())); Store(root).close()\n"
        "print('ok')"
    )
    roots = [str(tmp_path / f"reg{i}") for i in range(5)]
    start = time.time() + 3  # after every process has imported
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(start), *roots], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, out.strip()) for p, (out, _) in zip(procs, results, strict=True)] == [(0, "ok")] * 6, results


# -- upload quotas (#25) -------------------------------------------------------------------------
# A user may store QUOTA bytes in repos it cannot write (pull requests into public repos); its own namespace
# and its organisations' are unlimited. Each case is tried on the LFS batch and on a Xet xorb upload whose
# headers arrive with "Expect: 100-continue": a refusal must come before the server asks for the body.
QUOTA = 10_000
QUOTA_TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol"}
QUOTA_CASES = [  # (who, token, repo, LFS batch status, Xet: write-token status, xorb status)
    ("outsider-into-public", "tok-bob", "alice/pub", 413, 200, 413),
    ("owner", "tok-alice", "alice/pub", 200, 200, 200),
    ("org-member", "tok-carol", "team/shared", 200, 200, 200),
    ("outsider-into-own-namespace", "tok-bob", "bob/own", 200, 200, 200),
    ("outsider-into-private", "tok-bob", "alice/hidden", 404, 404, None),
    ("anonymous", None, "alice/pub", 401, 401, None),
]


@pytest.fixture(scope="module")
def quota_reg(tmp_path_factory):
    from huggingface_hub import HfApi

    root = tmp_path_factory.mktemp("quota") / "reg"
    srv = start_server(root, open_mode=False, tokens=QUOTA_TOKENS, orgs={"carol": ["team"]}, upload_quota=QUOTA)
    HfApi(endpoint=srv.url, token="tok-alice").create_repo("alice/pub")
    HfApi(endpoint=srv.url, token="tok-alice").create_repo("alice/hidden", private=True)
    HfApi(endpoint=srv.url, token="tok-carol").create_repo("team/shared")
    HfApi(endpoint=srv.url, token="tok-bob").create_repo("bob/own")
    yield Registry(srv, root)
    srv.stop()


def _quota_used(root: Path, user: str) -> int:
    db = sqlite3.connect(root / "registry.db")
    try:
        return db.execute("SELECT COALESCE(SUM(bytes), 0) FROM quota_charges WHERE user=?", (user,)).fetchone()[0]
    finally:
        db.close()


def _assert_quota_message(answer: Answer, user: str) -> None:
    message = answer.json()["error"]
    assert message.startswith("upload quota exceeded") and f"{user} has used 0 bytes of its 10 kB" in message
    assert f"({user}/...)" in message and "--upload-quota" in message, message
    assert answer.headers["x-error-message"] == message


@pytest.mark.parametrize("who,token,repo,lfs,_t,_x", QUOTA_CASES, ids=[c[0] for c in QUOTA_CASES])
def test_lfs_batch_quota_by_who_uploads_where(quota_reg, who, token, repo, lfs, _t, _x):
    """Objects summing past the quota, each below it: refused as a whole (nothing reserved) or all granted."""
    objects = [{"oid": _sha(b"%s-%d" % (who.encode(), i)), "size": QUOTA // 2} for i in range(3)]
    user = QUOTA_TOKENS.get(token or "", "nobody")
    before = _quota_used(quota_reg.root, user)
    a = quota_reg.req("POST", f"/{repo}.git/info/lfs/objects/batch", {"operation": "upload", "objects": objects}, token)
    _assert_no_leak(a, who)
    assert a.status == lfs, a.body
    if lfs == 413:
        _assert_quota_message(a, user)
        assert _quota_used(quota_reg.root, user) == before
    if lfs == 200:
        hrefs = [o["actions"]["upload"]["href"] for o in a.json()["objects"]]
        assert len(hrefs) == 3 and not any("charge=" in h for h in hrefs)  # unlimited: nothing reserved
        assert _quota_used(quota_reg.root, user) == before == 0


@pytest.mark.parametrize("who,token,repo,_l,tok_status,xorb_status", QUOTA_CASES, ids=[c[0] for c in QUOTA_CASES])
def test_xet_xorb_quota_is_decided_on_the_headers(quota_reg, who, token, repo, _l, tok_status, xorb_status):
    from test_xet_formats import xorb_bytes

    create_pr = "main" if who in ("owner", "org-member", "outsider-into-own-namespace") else "None?create_pr=1"
    t = quota_reg.req("GET", f"/api/models/{repo}/xet-write-token/{create_pr}", token=token)
    _assert_no_leak(t, who)
    assert t.status == tok_status, t.body
    if xorb_status is None:
        return
    cas_token = t.json()["accessToken"]
    body, name = xorb_bytes([os.urandom(QUOTA // 2 + 1), os.urandom(QUOTA // 2 + 1)])  # past the quota
    head = (
        f"POST /api/xet-cas/v1/xorbs/default/{name} HTTP/1.1\r\nHost: {quota_reg.host}:{quota_reg.port}\r\n"
        f"Authorization: Bearer {cas_token}\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((quota_reg.host, quota_reg.port), timeout=30) as s:
        s.sendall(head)
        first = s.recv(1 << 16)
        if first.startswith(b"HTTP/1.1 100"):  # the server asks for the body: only an unlimited uploader
            assert xorb_status == 200, f"{who}: asked for the body of an upload past the quota"
            s.sendall(body)
            rest = b""
            while chunk := s.recv(1 << 16):
                rest += chunk
            first = first.partition(b"\r\n\r\n")[2] + rest
            first = first if first.startswith(b"HTTP/") else rest
        else:
            while chunk := s.recv(1 << 16):
                first += chunk
    status = int(first.split(b" ", 2)[1])
    head_part, _, payload = first.partition(b"\r\n\r\n")
    assert status == xorb_status, first[:300]
    stored = any(p.name == name for p in (quota_reg.root / "xorbs").rglob("*"))
    if status == 413:
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (x.partition(":") for x in head_part.decode("latin-1").split("\r\n")[1:])
        }
        _assert_quota_message(Answer(status, headers, payload), QUOTA_TOKENS[token])
        assert not any(p.name == name for p in (quota_reg.root / "xorbs").rglob("*"))
        assert _quota_used(quota_reg.root, QUOTA_TOKENS[token]) == 0
    else:
        assert json.loads(payload) == {"was_inserted": True} and stored
        assert _quota_used(quota_reg.root, QUOTA_TOKENS[token]) == 0
    assert quota_reg.temp_files() == []


# -- every mode: private content never served, an invisible repo answers as a missing one ------------
# (tokens / open, each with and without a read-through upstream). Each mode has twin registries: the same
# repos, but only the first holds alice's private ones; an outsider's answers must be the same bytes.
MODES = ["tokens", "open", "tokens+upstream", "open+upstream"]
MODE_ENDPOINTS = [(m, t, b) for m, t, b in PRIVATE_ENDPOINTS if "move" not in t] + [
    ("GET", "/api/models/alice/secret/xet-write-token/main", None),
    ("POST", "/api/models/alice/secret/preupload/main?create_pr=1", {"files": [{"path": "s.txt", "size": 1}]}),
    ("GET", "/api/models/alice/secret/no-such-endpoint", None),
    ("GET", "/alice/secret", None),  # web pages
    ("GET", "/alice/secret/tree/main", None),
    ("GET", "/alice/secret/raw/main/s.txt", None),
    ("GET", "/alice/secret/commits/main", None),
    ("GET", "/alice/secret/discussions/2", None),
    ("GET", "/datasets/alice/dsecret", None),
]
READ_THROUGH = {"/api/models/alice/secret", "/api/models/alice/secret/tree/main", "/api/models/alice/secret/refs"}
CSRF_COOKIE = {"Cookie": "deltahub_csrf=" + "c" * 43}  # a fixed CSRF cookie: pages set none, their bytes compare


def _build(root: Path, mode: str, upstream: str | None, private: bool) -> Registry:
    from huggingface_hub import CommitOperationAdd, HfApi

    srv = start_server(root, open_mode=mode.startswith("open"), tokens=TOKENS, upstream=upstream)
    alice = HfApi(endpoint=srv.url, token="tok-alice")
    alice.create_repo("alice/scratch")
    alice.upload_file(path_or_fileobj=b"public", path_in_repo="p.txt", repo_id="alice/scratch")
    if private:
        alice.create_repo("alice/secret", private=True)
        ops = [CommitOperationAdd(p, SECRET) for p in ("s.txt", "sub/s.txt")]
        alice.create_commit("alice/secret", [*ops, CommitOperationAdd("w.safetensors", LFS_SECRET)], commit_message="s")
        alice.create_tag("alice/secret", tag="v1")
        alice.create_branch("alice/secret", branch="dev")
        alice.create_commit("alice/secret", [CommitOperationAdd("pr.txt", SECRET)], commit_message="p", create_pr=True)
        alice.create_discussion("alice/secret", title="secret talk", description=SECRET.decode())
        alice.create_repo("alice/dsecret", private=True, repo_type="dataset")
        alice.upload_file(path_or_fileobj=SECRET, path_in_repo="d.txt", repo_id="alice/dsecret", repo_type="dataset")
    return Registry(srv, root)


@pytest.fixture(scope="module")
def mode_upstream(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("up"), open_mode=False, tokens={"tok-up": "up"}, owner=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="module", params=MODES)
def twins(request, tmp_path_factory, mode_upstream):
    base = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    upstream = mode_upstream.url if "upstream" in request.param else None
    held = _build(base / "held", request.param, upstream, private=True)
    missing = _build(base / "missing", request.param, upstream, private=False)
    yield request.param, held, missing
    held.srv.stop()
    missing.srv.stop()


def _comparable(a: Answer) -> tuple:
    return a.status, {k: v for k, v in a.headers.items() if k not in ("date", "x-request-id")}, a.body


@pytest.mark.parametrize(
    "method,target,body",
    MODE_ENDPOINTS,
    ids=[f"{m}{t}{'-json' if isinstance(b, dict) else ''}" for m, t, b in MODE_ENDPOINTS],
)
@pytest.mark.parametrize("token", OUTSIDERS, ids=["no-token", "other-user", "bogus-token"])
def test_in_every_mode_a_private_repo_is_a_missing_one_byte_for_byte(twins, method, target, body, token):
    mode, held, missing = twins
    a, b = (_send(reg, method, target, body, token, headers=dict(CSRF_COOKIE)) for reg in (held, missing))
    _assert_no_leak(a, f"{mode}: {method} {target} as {token}")
    assert a.status == 404, (mode, a.status, a.body[:300])
    assert _comparable(a) == _comparable(b), (mode, a.body[:300], b.body[:300])
    if "upstream" in mode and target in READ_THROUGH:
        assert b"upstream" in a.body, a.body  # the missing-repo answer, read-through detail included


@pytest.mark.parametrize("token", OUTSIDERS, ids=["no-token", "other-user", "bogus-token"])
def test_in_every_mode_listings_and_pages_hide_private_repos(twins, token):
    mode, held, _ = twins
    for target in ("/api/models", "/api/models?search=secret", "/api/datasets", "/", "/models", "/datasets"):
        a = held.req("GET", target, token=token)
        _assert_no_leak(a, f"{mode}: {target} as {token}")
        assert a.status == 200 and b"alice/secret" not in a.body and b"dsecret" not in a.body, (mode, target)
    assert b"alice/scratch" in held.req("GET", "/api/models", token=token).body
    mine = {m["id"] for m in held.req("GET", "/api/models", token="tok-alice").json()}
    assert "alice/secret" in mine  # alice, with her token, sees it in every mode


PREUPLOAD = {"files": [{"path": "p.txt", "size": 1, "sample": ""}]}
# (mode, token, create_pr, status): preupload needs what the commit it prepares needs (the Hub's rule)
PREUPLOAD_CASES = [
    ("tokens", None, False, 403),
    ("tokens", None, True, 401),
    ("tokens", "tok-nobody", False, 403),
    ("tokens", "tok-bob", False, 403),
    ("tokens", "tok-bob", True, 200),
    ("tokens", "tok-alice", False, 200),
    ("open", None, False, 200),
    ("open", None, True, 200),
    ("open", "tok-bob", False, 200),
]


@pytest.mark.parametrize(
    "mode,token,create_pr,status",
    PREUPLOAD_CASES,
    ids=[f"{m}-{t}-{'pr' if p else 'branch'}" for m, t, p, _ in PREUPLOAD_CASES],
)
def test_preupload_needs_the_rights_of_its_commit(twins, mode, token, create_pr, status):
    twin_mode, held, _ = twins
    if twin_mode.split("+")[0] != mode:  # each case runs with and without an upstream
        pytest.skip(f"a case of {mode} mode")
    a = held.req(
        "POST", f"/api/models/alice/scratch/preupload/main{'?create_pr=1' if create_pr else ''}", PREUPLOAD, token
    )
    _assert_no_leak(a, f"preupload as {token}")
    assert a.status == status, a.body
    if status == 200:
        assert a.json()["files"][0]["oid"] is not None  # the answer that needed the rights: what is there already
    else:
        assert b"oid" not in a.body


@pytest.mark.parametrize("token", OUTSIDERS, ids=["no-token", "other-user", "bogus-token"])
def test_creating_a_repo_under_a_private_name_answers_as_under_a_free_one(twins, token):
    """Where writes need a token, an outsider's create under a name a private repo holds gets the same bytes as
    under a free name. With --open anyone may create anywhere, so a taken name answers 409: that mode is for a
    machine with one user (docs/registry-access.md says so)."""
    mode, held, missing = twins
    body = {"name": "secret", "organization": "alice"}
    if mode.startswith("open"):
        pytest.skip("--open: anyone may create anywhere, so a taken name is a conflict (documented)")
    a, b = (reg.req("POST", "/api/repos/create", body, token) for reg in (held, missing))
    _assert_no_leak(a, f"{mode}: create as {token}")
    assert a.status in (401, 403) and _comparable(a) == _comparable(b), (a.status, a.body[:200], b.body[:200])
