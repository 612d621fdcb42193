"""Upload quotas with the real clients: a user opening pull requests on another user's public repo may store
at most the limit there (LFS with HF_HUB_DISABLE_XET=1, Xet with hf_xet), refused before the bytes travel;
owners and organisation members are unlimited; bytes already stored are not charged again; concurrent
reservations never pass the limit together; the accounting survives a restart and is migrated into a
store of the previous schema version; ``hub serve --upload-quota`` takes sizes and refuses anything else.

The server records, for every request, its status and how many body bytes the app read, so "refused
before the bytes were sent" is checked on the wire as well as in the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_xet_client import client_env, run_client

from deltahub.server import migrate, start_server
from deltahub.server.quota import parse_size
from deltahub.server.storage import Store

TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol"}
ORGS = {"carol": ["team"]}
LIMIT = 300_000


class BodyRecorder:
    """ASGI wrapper keeping (method, path, status, body bytes the app read) of every request."""

    def __init__(self, app):
        self.app, self.log = app, []
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        entry = [scope.get("method"), scope.get("path"), None, 0]

        async def counting():
            message = await receive()
            entry[3] += len(message.get("body", b""))
            return message

        async def sending(message):
            if message["type"] == "http.response.start":
                entry[2] = message["status"]
                self.log.append(entry)
            await send(message)

        await self.app(scope, counting, sending)


@pytest.fixture
def hub(tmp_path):
    srv = start_server(tmp_path / "reg", open_mode=False, tokens=TOKENS, orgs=ORGS, upload_quota=LIMIT)
    framing = srv._server.config.app
    framing.app = srv.rec = BodyRecorder(framing.app)
    from huggingface_hub import HfApi

    alice = HfApi(endpoint=srv.url, token="tok-alice")
    alice.create_repo("alice/pub")
    alice.upload_file(
        path_or_fileobj=b"---\nlicense: mit\n---\n# a public repo\n", path_in_repo="README.md", repo_id="alice/pub"
    )
    HfApi(endpoint=srv.url, token="tok-carol").create_repo("team/shared")
    yield srv
    srv.stop()


def used(srv, user: str) -> int:
    """Bytes charged to ``user``, read from the database (independent of quota.py's arithmetic)."""
    db = sqlite3.connect(srv.root / "registry.db")
    try:
        return db.execute("SELECT COALESCE(SUM(bytes), 0) FROM quota_charges WHERE user=?", (user,)).fetchone()[0]
    finally:
        db.close()


def blob_stored(srv, data: bytes) -> bool:
    oid = hashlib.sha256(data).hexdigest()
    return (srv.root / "blobs" / oid[:2] / oid).exists()


PR = """
import sys
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
repo, path, src = sys.argv[1:4]
api = HfApi()
try:
    info = api.create_commit(repo, [CommitOperationAdd(path, src)], commit_message="pr", create_pr=True)
    print("OK", info.pr_revision)
except (HfHubHTTPError, ValueError, RuntimeError, OSError) as exc:
    print("REFUSED", " ".join(str(exc).split()))
"""


def pr(srv, tmp_path: Path, token: str, repo: str, data: bytes, xet: bool, path: str = "w.safetensors") -> str:
    """Open a pull request adding ``data`` as ``path`` with the real client in a fresh process; its one line."""
    src = tmp_path / f"src-{hashlib.sha256(data).hexdigest()[:12]}"
    src.write_bytes(data)
    env = client_env(srv, tmp_path / f"home-{token}-{xet}", token, xet=xet)
    code = PR.replace("import sys\n", f"import sys\nsys.argv = {['-', repo, path, str(src)]!r}\n", 1)
    return run_client(code, env)[-1]


def upload(srv, tmp_path: Path, token: str, repo: str, data: bytes, xet: bool) -> None:
    """Commit ``data`` straight to ``repo``'s main branch with the real client in a fresh process."""
    src = tmp_path / f"own-{hashlib.sha256(data).hexdigest()[:12]}"
    src.write_bytes(data)
    run_client(
        f"from huggingface_hub import HfApi; HfApi().upload_file(path_or_fileobj={str(src)!r}, "
        f"path_in_repo={src.name + '.safetensors'!r}, repo_id={repo!r})",
        client_env(srv, tmp_path / f"home-{token}-{xet}", token, xet=xet),
    )


def uploads(srv, mark: int, xet: bool) -> list[list]:
    frag = "/api/xet-cas/v1/xorbs/" if xet else "/lfs/upload/"
    return [e for e in srv.rec.log[mark:] if frag in e[1]]


@pytest.mark.parametrize("xet", [False, True], ids=["lfs", "xet"])
def test_a_pull_request_past_the_limit_is_refused_before_its_bytes_travel(hub, tmp_path, xet):
    big = os.urandom(LIMIT + 1000)
    mark = len(hub.rec.log)
    line = pr(hub, tmp_path, "tok-bob", "alice/pub", big, xet)
    assert line.startswith("REFUSED") and "413" in line, line
    if not xet:  # hf_xet reports the status only; the message it drops is checked in test_xet_refusal_message
        assert "upload quota exceeded" in line and "used 0 bytes" in line and f"{LIMIT / 1e3:.3g} kB" in line
        assert "--upload-quota" in line and "bob/" in line
    sent = uploads(hub, mark, xet)
    if xet:  # the xorb POST was answered 413 on its headers: the app read none of its body
        assert sent and all(status == 413 and body == 0 for _, _, status, body in sent), sent
        assert not [p for p in (hub.root / "xorbs").rglob("*") if p.is_file()]
    else:  # the batch was refused: no upload URL was handed out, no PUT was made
        assert sent == []
        assert any(e[1].endswith("/objects/batch") and e[2] == 413 for e in hub.rec.log[mark:])
    assert not blob_stored(hub, big)
    assert used(hub, "bob") == 0
    assert not [p for p in (hub.root / "tmp").rglob("*") if p.is_file()]
    from huggingface_hub import HfApi

    assert list(HfApi(endpoint=hub.url, token="tok-alice").get_repo_discussions("alice/pub")) == []


@pytest.mark.parametrize("xet", [False, True], ids=["lfs", "xet"])
def test_pull_requests_are_charged_once_per_stored_object_and_owners_are_unlimited(hub, tmp_path, xet):
    part = os.urandom(LIMIT // 2)
    assert pr(hub, tmp_path, "tok-bob", "alice/pub", part, xet).startswith("OK")
    charged = used(hub, "bob")
    if xet:  # the stored xorb's bytes: its chunk region, at least the (incompressible) content
        assert len(part) <= charged == sum(p.stat().st_size for p in (hub.root / "xorbs").rglob("*") if p.is_file())
    else:
        assert charged == len(part) and blob_stored(hub, part)
    # the same bytes again, in a second pull request and under another name: nothing new is stored or charged
    assert pr(hub, tmp_path, "tok-bob", "alice/pub", part, xet, path="again.safetensors").startswith("OK")
    assert used(hub, "bob") == charged
    # what alice stored herself is not bob's to pay for when his pull request carries it too
    mine = os.urandom(LIMIT // 2)
    upload(hub, tmp_path, "tok-alice", "alice/pub", mine, xet)
    assert pr(hub, tmp_path, "tok-bob", "alice/pub", mine, xet, path="copy.safetensors").startswith("OK")
    assert used(hub, "bob") == charged
    # what is left of the limit is less than another new half: refused, naming what is used
    line = pr(hub, tmp_path, "tok-bob", "alice/pub", os.urandom(LIMIT // 2 + 2000), xet)
    assert line.startswith("REFUSED") and "413" in line, line
    assert xet or f"used {charged / 1e3:.3g} kB" in line, line
    assert used(hub, "bob") == charged
    # owners and organisation members: unlimited in their own namespaces, and charged nothing
    huge = os.urandom(2 * LIMIT)
    upload(hub, tmp_path, "tok-alice", "alice/pub", huge, xet)
    assert pr(hub, tmp_path, "tok-carol", "team/shared", huge, xet).startswith("OK")
    assert used(hub, "alice") == used(hub, "carol") == 0
    assert used(hub, "bob") == charged


def _batch(srv, token: str, repo: str, objects: list[tuple[str, int]]) -> tuple[int, dict]:
    body = json.dumps({"operation": "upload", "objects": [{"oid": o, "size": s} for o, s in objects]}).encode()
    req = urllib.request.Request(
        f"{srv.url}/{repo}.git/info/lfs/objects/batch",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_concurrent_reservations_never_pass_the_limit_together(hub):
    """Twelve batches at once, each a new object of a quarter of the limit: exactly four get upload URLs."""
    size = LIMIT // 4
    results: list[int] = []
    start = threading.Barrier(12)

    def one(i: int) -> None:
        start.wait()
        results.append(_batch(hub, "tok-bob", "alice/pub", [(hashlib.sha256(b"%d" % i).hexdigest(), size)])[0])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 4 + [413] * 8
    assert used(hub, "bob") == 4 * size <= LIMIT


def test_a_reservation_is_released_and_a_ticket_cannot_shed_its_charge(hub):
    data = os.urandom(LIMIT // 3)
    oid = hashlib.sha256(data).hexdigest()
    status, answer = _batch(hub, "tok-bob", "alice/pub", [(oid, len(data))])
    href = answer["objects"][0]["actions"]["upload"]["href"]
    assert status == 200 and "&charge=bob" in href and used(hub, "bob") == len(data)
    # the same object announced again holds one reservation, not two
    assert _batch(hub, "tok-bob", "alice/pub", [(oid, len(data))])[0] == 200 and used(hub, "bob") == len(data)
    for forged in (href.replace("&charge=bob", ""), href.replace("charge=bob", "charge=alice")):
        req = urllib.request.Request(forged, data=data, method="PUT")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=60)
        assert refused.value.code == 403
    assert not blob_stored(hub, data)
    with urllib.request.urlopen(urllib.request.Request(href, data=data, method="PUT"), timeout=60) as r:
        assert r.status == 200
    assert blob_stored(hub, data) and used(hub, "bob") == len(data)


def test_lapsed_reservations_free_the_quota_and_charges_survive_a_restart(tmp_path, monkeypatch):
    from deltahub.server import quota as q
    from deltahub.server.auth import Auth

    store = Store(tmp_path / "reg")
    repo = store.create_repo("model", "alice", "pub", False, "alice")
    quotas = q.Quotas(store, Auth(open_mode=False, tokens=TOKENS), 1000)
    assert quotas.reserve("bob", repo, [("lfs:" + "a" * 64, 600)])
    with pytest.raises(q.QuotaExceeded):
        quotas.reserve("bob", repo, [("lfs:" + "b" * 64, 600)])
    quotas.settle("bob", "lfs:" + "a" * 64, 600)  # stored: charged for good
    assert quotas.reserve("bob", repo, [("lfs:" + "c" * 64, 400)])  # 600 + 400 fits exactly
    later = q.time.time() + q.RESERVATION_SECONDS + 1
    monkeypatch.setattr(q.time, "time", lambda: later)
    assert quotas.used("bob") == 600  # the unsettled reservation lapsed
    assert quotas.reserve("bob", repo, [("lfs:" + "d" * 64, 400)])
    store.close()
    again = q.Quotas(Store(tmp_path / "reg"), Auth(open_mode=False, tokens=TOKENS), 1000)
    assert again.used("bob") == 1000
    assert not again.reserve("alice", repo, [("lfs:" + "e" * 64, 10**12)])  # the owner: exempt
    again.store.close()


def test_a_store_of_the_previous_version_gains_the_quota_table(tmp_path):
    """A version-4 store (no quota_charges) is upgraded in place, keeps its repos and files, and enforces quotas."""
    from huggingface_hub import CommitOperationAdd, HfApi

    root = tmp_path / "reg"
    store = Store(root)
    repo = store.create_repo("model", "alice", "pub", False, "alice")
    store.close()
    db = sqlite3.connect(root / "registry.db")
    db.execute("DROP TABLE quota_charges")
    db.execute("PRAGMA user_version=4")
    db.commit()
    db.close()
    with start_server(root, open_mode=False, tokens=TOKENS, upload_quota=1000) as srv:
        assert HfApi(endpoint=srv.url, token="tok-bob").model_info("alice/pub").sha == Store(root).resolve(repo, "main")
        status, answer = _batch(srv, "tok-bob", "alice/pub", [("f" * 64, 1001)])
        assert status == 413 and "upload quota exceeded" in answer["error"]
        HfApi(endpoint=srv.url, token="tok-alice").create_commit(
            "alice/pub", [CommitOperationAdd("x.txt", b"x")], commit_message="x"
        )
    db = sqlite3.connect(root / "registry.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == migrate.SCHEMA_VERSION == 5
    assert {r[1] for r in db.execute("PRAGMA table_info(quota_charges)")} >= {"user", "object", "bytes", "until"}
    db.close()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("10GB", 10_000_000_000),
        ("500MB", 500_000_000),
        ("2GiB", 2 * 1024**3),
        ("1.5 kB", 1500),
        ("0", 0),
        ("123", 123),
        ("unlimited", None),
        ("NONE", None),
    ],
)
def test_quota_sizes_parse(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["ten", "-1", "5XB", "1.2.3GB", "", "GB", "1e9"])
def test_a_bad_upload_quota_is_one_line_and_exit_2(bad, tmp_path):
    serve = [sys.executable, "-m", "deltahub.cli", "hub", "serve", "--root", str(tmp_path), "--open"]
    done = subprocess.run(
        [*serve, "--upload-quota", bad],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--upload-quota" in lines[0] and "10GB" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_hub_serve_enforces_the_quota_it_is_given(tmp_path):
    """``deltahub hub serve --upload-quota 1kB`` in its own process: it says the limit, and enforces it."""
    import socket
    import time

    from huggingface_hub import HfApi

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "deltahub.cli", "hub", "serve", "--root", str(tmp_path / "reg"), "--port", str(port)]
    cmd += ["--token", "tok-alice=alice", "--token", "tok-bob=bob", "--no-upstream", "--upload-quota", "1kB"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "upload quota 1 kB" in proc.stdout.readline()

        class Srv:
            url = f"http://127.0.0.1:{port}"

        deadline = time.time() + 60
        while True:
            try:
                HfApi(endpoint=Srv.url, token="tok-alice").create_repo("alice/pub")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert _batch(Srv, "tok-bob", "alice/pub", [("a" * 64, 1000)])[0] == 200
        status, answer = _batch(Srv, "tok-bob", "alice/pub", [("b" * 64, 1)])
        assert status == 413 and "bob has used 1 kB of its 1 kB" in answer["error"]
        assert _batch(Srv, "tok-alice", "alice/pub", [("c" * 64, 10**6)])[0] == 200  # the owner
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_xorb_already_stored_is_not_charged_and_a_new_one_is_charged_its_stored_bytes(hub):
    from test_xet_client import req, xet_token
    from test_xet_formats import xorb_bytes

    stored, stored_name = xorb_bytes([os.urandom(5000), os.urandom(4000)])
    tok, cas = xet_token(hub, "alice/pub", "write", "tok-alice")
    assert req(hub, "POST", f"{cas}/v1/xorbs/default/{stored_name}", stored, tok) == (200, b'{"was_inserted":true}')
    status, body = req(hub, "GET", "/api/models/alice/pub/xet-write-token/None?create_pr=1", token="tok-bob")
    assert status == 200, body
    bob = json.loads(body)["accessToken"]
    assert req(hub, "POST", f"{cas}/v1/xorbs/default/{stored_name}", stored, bob) == (200, b'{"was_inserted":false}')
    assert used(hub, "bob") == 0
    fresh, fresh_name = xorb_bytes([os.urandom(7000)])
    assert req(hub, "POST", f"{cas}/v1/xorbs/default/{fresh_name}", fresh, bob) == (200, b'{"was_inserted":true}')
    db = sqlite3.connect(hub.root / "registry.db")
    try:
        (kept,) = db.execute("SELECT stored_bytes FROM xet_xorbs WHERE hash=?", (fresh_name,)).fetchone()
        rows = db.execute("SELECT object, bytes, until FROM quota_charges WHERE user='bob'").fetchall()
    finally:
        db.close()
    assert rows == [(f"xorb:{fresh_name}", kept, None)] and kept >= 7000


def test_open_mode_has_no_quota_since_anyone_may_write_anywhere(tmp_path):
    """--open means writes need no token: every repo is the caller's to write, so nothing is limited."""
    from huggingface_hub import HfApi

    with start_server(tmp_path / "reg", open_mode=True, upload_quota=10) as srv:
        HfApi(endpoint=srv.url).create_repo("alice/pub")
        status, answer = _batch(srv, "any", "alice/pub", [("a" * 64, 10**6)])
        assert status == 200 and "charge=" not in answer["objects"][0]["actions"]["upload"]["href"]
        assert used(srv, "local") == 0
