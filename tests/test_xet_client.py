"""The registry's Xet storage with the real clients (huggingface_hub 2.4.0, hf_xet 1.8.0, datasets, the
``hf`` CLI) in fresh processes with no HF_HUB_DISABLE_XET, as any default install talks to it; and the
refusals (forged xorbs, shards naming what the uploader may not use, reads without rights, bad tokens),
a kill -9 mid-upload and a full disk, checked on the store afterwards.

The server records every request it answers, so each test can show that a transfer really went through
Xet (xorbs, shards, reconstructions) or really did not (plain HTTP).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_registry_security import _fill, tiny_disk  # noqa: F401  (a fixture)
from test_xet_formats import file_shard, ref_chunk_hash, ref_hex, shard_bytes, xorb_bytes

from deltahub.server import start_server
from deltahub.server.storage import Store
from deltahub.server.xet import tokens

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
BIN = Path(sys.executable).parent


class Recorder:
    """ASGI wrapper keeping (method, path, status) of every answer."""

    def __init__(self, app):
        self.app, self.log = app, []
        self.state = app.state  # RunningServer.stop reaches the store through it

    async def __call__(self, scope, receive, send):
        async def sending(message):
            if message["type"] == "http.response.start":
                self.log.append((scope.get("method"), scope.get("path"), message["status"]))
            await send(message)

        await self.app(scope, receive, sending)

    def since(self, mark: int) -> list[tuple[str, str, int]]:
        return self.log[mark:]


@pytest.fixture
def hub(tmp_path):
    srv = start_server(tmp_path / "reg", open_mode=False, tokens=TOKENS)
    framing = srv._server.config.app
    framing.app = rec = Recorder(framing.app)
    srv.rec = rec
    yield srv
    srv.stop()


def client_env(srv, home: Path, token: str = "tok-alice", xet: bool = True) -> dict[str, str]:
    """A default user's environment: no HF_* variable but the endpoint, a token and a fresh HF_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DELTAHUB_"))}
    env.update(HF_ENDPOINT=srv.url, HF_TOKEN=token, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    env.update(HF_HUB_DISABLE_PROGRESS_BARS="1", HF_UPDATE_DOWNLOAD_COUNTS="0")
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"  # an older client: git-LFS and plain HTTP
    return env


def run_client(code: str, env: dict[str, str], timeout: int = 300) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.splitlines()


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def cas_calls(log) -> dict[str, int]:
    """How many answers each kind of Xet call got (2xx only)."""
    kinds = {"xorbs": "/v1/xorbs/", "shards": "/v1/shards", "reconstructions": "/reconstructions/"}
    kinds.update(ranges="/xorb-range/", dedup="/v1/chunks/")
    return {k: sum(1 for m, p, s in log if frag in p and s < 300) for k, frag in kinds.items()}


def xet_rows(root: Path) -> dict[str, int]:
    db = sqlite3.connect(root / "registry.db")
    try:
        return {sha256: size for sha256, size in db.execute("SELECT sha256, size FROM xet_files")}
    finally:
        db.close()


def xorb_bytes_on_disk(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "xorbs").rglob("*") if p.is_file())


DOWNLOAD = """
import sys
from huggingface_hub import hf_hub_download, snapshot_download
repo, out, *names = sys.argv[1:] if len(sys.argv) > 1 else ({args})
snap = snapshot_download(repo, local_dir=out + "/snap")
print(snap)
for n in names:
    print(hf_hub_download(repo, n, force_download=True, cache_dir=out + "/cache"))
"""


def download(srv, home: Path, repo: str, names: list[str], xet: bool, token: str = "tok-alice") -> dict[str, str]:
    """sha256 of each file, through snapshot_download and through hf_hub_download (which must agree)."""
    out = home / "dl"
    code = DOWNLOAD.format(args=repr([repo, str(out), *names]))
    printed = run_client(code, client_env(srv, home, token, xet))
    snap = Path(printed[0])
    got = {}
    for name, single in zip(names, printed[1:], strict=True):
        got[name] = sha(snap / name)
        assert sha(Path(single)) == got[name], name
    return got


# -- round trips --------------------------------------------------------------------------------------
def test_upload_folder_and_hf_upload_go_through_xet_and_read_back_both_ways(hub, tmp_path):
    src = tmp_path / "up"
    src.mkdir()
    sizes = {"empty.bin": 0, "one.bin": 1, "eight.bin": 8192, "four-mib.safetensors": 4 * 2**20}
    for name, n in sizes.items():
        (src / name).write_bytes(os.urandom(n))
    (src / "README.md").write_text("---\nlicense: mit\n---\n# x\n")
    want = {name: sha(src / name) for name in sizes}
    mark = len(hub.rec.log)
    run_client(
        f"""
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("alice/folder")
        api.upload_folder(folder_path={str(src)!r}, repo_id="alice/folder")
        api.create_repo("alice/cli")
        """,
        client_env(hub, tmp_path / "hf-up"),
    )
    done = subprocess.run(
        [str(BIN / "hf"), "upload", "alice/cli", str(src), "."],
        env=client_env(hub, tmp_path / "hf-cli"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    up = cas_calls(hub.rec.since(mark))
    assert up["xorbs"] >= 1 and up["shards"] >= 2  # both uploads went through Xet, not git-LFS
    assert not [p for m, p, s in hub.rec.since(mark) if "/info/lfs/" in p]
    rows = xet_rows(hub.root)
    nonempty = {n: h for n, h in want.items() if sizes[n]}
    assert set(nonempty.values()) <= set(rows)  # registered with their verified sha256 ...
    blobs = {p.name for p in (hub.root / "blobs").rglob("*") if p.is_file()}
    assert not blobs & set(nonempty.values())  # ... and stored once, as chunks, not as blobs

    for repo in ("alice/folder", "alice/cli"):
        mark = len(hub.rec.log)
        assert download(hub, tmp_path / f"xet-{repo[6:]}", repo, list(sizes), xet=True) == want
        xet_down = cas_calls(hub.rec.since(mark))
        assert xet_down["reconstructions"] >= 3 and xet_down["ranges"] >= 3  # hf_xet downloaded natively
        mark = len(hub.rec.log)
        assert download(hub, tmp_path / f"http-{repo[6:]}", repo, list(sizes), xet=False) == want
        assert cas_calls(hub.rec.since(mark))["reconstructions"] == 0  # plain HTTP got reconstructed bytes


def test_datasets_push_to_hub_and_load_dataset_over_xet(hub, tmp_path):
    mark = len(hub.rec.log)
    printed = run_client(
        """
        import datasets, json
        datasets.config.USE_PARQUET_EXPORT = False
        rows = {"prompt": [f"p{i}" for i in range(300)], "chosen": ["a" * 50] * 300, "rejected": ["b"] * 300}
        ds = datasets.Dataset.from_dict(rows)
        ds.push_to_hub("alice/prefs")
        back = datasets.load_dataset("alice/prefs", split="train")
        streamed = list(datasets.load_dataset("alice/prefs", split="train", streaming=True))
        print(json.dumps([back.to_dict() == rows, [r["prompt"] for r in streamed] == rows["prompt"]]))
        """,
        client_env(hub, tmp_path / "hf"),
    )
    assert json.loads(printed[-1]) == [True, True]
    calls = cas_calls(hub.rec.since(mark))
    assert calls["shards"] >= 1 and calls["reconstructions"] >= 1
    assert not [p for m, p, s in hub.rec.since(mark) if "/info/lfs/" in p]


def _write_big(path: Path, n: int, seed: int) -> None:
    import random

    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(n // 2**20):
            f.write(rnd.randbytes(2**20))


def test_a_64_mib_file_changed_by_1_mib_stores_about_1_mib_and_reads_back(hub, tmp_path):
    v1 = tmp_path / "v1"
    v1.mkdir()
    _write_big(v1 / "w.bin", 64 * 2**20, 1)
    v2 = tmp_path / "v2"
    v2.mkdir()
    data = bytearray((v1 / "w.bin").read_bytes())
    data[30 * 2**20 : 31 * 2**20] = os.urandom(2**20)
    (v2 / "w.bin").write_bytes(bytes(data))
    del data
    upload = """
        import sys
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("alice/big", exist_ok=True)
        print(api.upload_folder(folder_path=sys.argv[1] if len(sys.argv) > 1 else {folder!r}, repo_id="alice/big").oid)
    """
    first = run_client(upload.format(folder=str(v1)), client_env(hub, tmp_path / "hf1"))[-1]
    after_first = xorb_bytes_on_disk(hub.root)
    assert 64 * 2**20 <= after_first < 65 * 2**20
    # a fresh client (no local cache of what it sent before): dedup comes from the server's global-dedup query
    mark = len(hub.rec.log)
    run_client(upload.format(folder=str(v2)), client_env(hub, tmp_path / "hf2"))
    added = xorb_bytes_on_disk(hub.root) - after_first
    assert 2**20 <= added < 3 * 2**20, added
    assert cas_calls(hub.rec.since(mark))["dedup"] >= 1
    for xet in (True, False):
        got = download(hub, tmp_path / f"dl-{xet}", "alice/big", ["w.bin"], xet=xet)
        assert got == {"w.bin": sha(v2 / "w.bin")}
    fetch = f"from huggingface_hub import hf_hub_download as d; print(d('alice/big', 'w.bin', revision={first!r}))"
    old = run_client(
        fetch,
        client_env(hub, tmp_path / "dl-old"),
    )
    assert sha(Path(old[-1])) == sha(v1 / "w.bin")


def test_dedup_across_repos_follows_visibility(hub, tmp_path):
    """Content is stored once whoever uploads it; but the dedup query answers bob only about content he may
    read: a copy of alice's private file must be sent whole (proving he has it), a copy of her public one not."""
    folders = [tmp_path / "one", tmp_path / "two"]  # different content, so the second case cannot reuse the first
    for seed, folder in enumerate(folders):
        folder.mkdir()
        _write_big(folder / "w.bin", 4 * 2**20, seed)
    code = """
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo({repo!r}, private={private})
        api.upload_folder(folder_path={folder!r}, repo_id={repo!r})
    """

    def upload(repo, private, folder, home, token="tok-alice"):
        mark = len(hub.rec.log)
        run_client(code.format(repo=repo, private=private, folder=str(folder)), client_env(hub, home, token))
        return cas_calls(hub.rec.since(mark))

    upload("alice/secret", True, folders[0], tmp_path / "a1")
    stored = xorb_bytes_on_disk(hub.root)
    bob = upload("bob/copy", False, folders[0], tmp_path / "b1", "tok-bob")
    assert bob["dedup"] == 0 and bob["xorbs"] >= 1  # no answer about alice's private chunks: bob sent them all
    assert xorb_bytes_on_disk(hub.root) == stored  # ... and they are stored once all the same
    upload("alice/pub", False, folders[1], tmp_path / "a2")
    stored = xorb_bytes_on_disk(hub.root)
    bob = upload("bob/copy2", False, folders[1], tmp_path / "b2", "tok-bob")
    assert bob["dedup"] >= 1 and bob["xorbs"] == 0  # public content: deduplicated, nothing sent
    assert xorb_bytes_on_disk(hub.root) == stored
    got = download(hub, tmp_path / "b-dl", "bob/copy2", ["w.bin"], xet=True, token="tok-bob")
    assert got == {"w.bin": sha(folders[1] / "w.bin")}


@pytest.mark.long
def test_a_200_mib_file_round_trips_through_xet_and_plain_http(hub, tmp_path):
    src = tmp_path / "up"
    src.mkdir()
    _write_big(src / "w.bin", 200 * 2**20, 3)
    run_client(
        f"""
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("alice/huge")
        api.upload_folder(folder_path={str(src)!r}, repo_id="alice/huge")
        """,
        client_env(hub, tmp_path / "hf"),
        timeout=900,
    )
    for xet in (True, False):
        assert download(hub, tmp_path / f"dl-{xet}", "alice/huge", ["w.bin"], xet=xet) == {"w.bin": sha(src / "w.bin")}


# -- refusals -----------------------------------------------------------------------------------------
def req(srv, method, path, body=None, token=None, headers=None):
    url = path if path.startswith("http") else srv.url + path
    r = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if token:
        r.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def create_repo(srv, name: str, hub_token: str, private: bool = False) -> None:
    body = json.dumps({"name": name, "private": private}).encode()
    assert req(srv, "POST", "/api/repos/create", body, hub_token, {"Content-Type": "application/json"})[0] == 200


def xet_token(srv, repo: str, scope: str, hub_token: str, rev: str = "main") -> tuple[str, str]:
    status, body = req(srv, "GET", f"/api/models/{repo}/xet-{scope}-token/{rev}", token=hub_token)
    assert status == 200, body
    got = json.loads(body)
    return got["accessToken"], got["casUrl"]


def _publish(srv, repo: str, hub_token: str, chunks: list[bytes], private: bool = False) -> tuple[str, str, str]:
    """Upload one file through the CAS API by hand and commit it: (xorb hex, file hex, sha256)."""
    create_repo(srv, repo.split("/")[1], hub_token, private)
    tok, cas = xet_token(srv, repo, "write", hub_token)
    body, name = xorb_bytes(chunks)
    assert req(srv, "POST", f"{cas}/v1/xorbs/default/{name}", body, tok)[0] == 200
    raw, file_hex = file_shard(chunks, name)
    assert req(srv, "POST", f"{cas}/v1/shards", raw, tok)[0] == 200
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    lines = [
        {"key": "header", "value": {"summary": "up"}},
        {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": digest, "size": sum(map(len, chunks))}},
    ]
    ndjson = "\n".join(json.dumps(x) for x in lines).encode()
    status, body = req(
        srv, "POST", f"/api/models/{repo}/commit/main", ndjson, hub_token, {"Content-Type": "application/x-ndjson"}
    )
    assert status == 200, body
    return name, file_hex, digest


def test_forged_and_unusable_uploads_are_refused_and_nothing_is_kept(hub):
    private = [os.urandom(3000), os.urandom(2000)]
    alice_xorb, _, _ = _publish(hub, "alice/private", "tok-alice", private, True)
    create_repo(hub, "pub", "tok-bob")
    tok, cas = xet_token(hub, "bob/pub", "write", "tok-bob")
    chunks = [os.urandom(1000)]
    body, name = xorb_bytes(chunks)
    forged = "ab" * 32
    status, payload = req(hub, "POST", f"{cas}/v1/xorbs/default/{forged}", body, tok)  # hash mismatch
    assert status == 400 and b"hash" in payload
    assert not (hub.root / "xorbs" / forged[:2] / forged).exists()
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    assert req(hub, "POST", f"{cas}/v1/xorbs/default/{name}", tampered, tok)[0] == 400
    rows = sqlite3.connect(hub.root / "registry.db").execute("SELECT hash FROM xet_xorbs").fetchall()
    assert rows == [(alice_xorb,)]
    # a shard naming a xorb that does not exist, and one naming alice's private xorb without knowing its
    # chunks (a guessed verification hash): the same refusal, so that it tells nothing about what exists
    missing, _ = file_shard(chunks, name)
    s1, p1 = req(hub, "POST", f"{cas}/v1/shards", missing, tok)
    guessed = shard_bytes([(bytes(32), [(bytes.fromhex(alice_xorb), 0, 2, 5000, bytes(32))], bytes(32))])
    s2, p2 = req(hub, "POST", f"{cas}/v1/shards", guessed, tok)
    assert s1 == s2 == 400 and re.sub(rb"[0-9a-f]{64}", b"H", p1) == re.sub(rb"[0-9a-f]{64}", b"H", p2)
    assert len(xet_rows(hub.root)) == 1  # only alice's own file
    # whoever holds the same bytes knows their chunk hashes (Xet's proof of possession, as hf_xet uses it
    # when it dedups against its own cache): that reference is accepted, and gives bob only his own bytes
    proven, _ = file_shard(private, alice_xorb)
    assert req(hub, "POST", f"{cas}/v1/shards", proven, tok)[0] == 200
    # a read token cannot upload; a forged or expired token is refused
    rtok, _ = xet_token(hub, "bob/pub", "read", "tok-bob")
    assert req(hub, "POST", f"{cas}/v1/xorbs/default/{name}", body, rtok)[0] == 403
    assert req(hub, "POST", f"{cas}/v1/xorbs/default/{name}", body, tok[:-2] + "xx")[0] == 401
    state = hub.rec.state.hub
    bob_repo = state.store.get_repo("model", "bob", "pub")
    expired, _ = tokens.issue(state.secret, bob_repo, "bob", "write", "main", ttl=-1)
    assert req(hub, "POST", f"{cas}/v1/xorbs/default/{name}", body, expired)[0] == 401
    assert req(hub, "POST", f"{cas}/v1/xorbs/default/{name}", body)[0] == 401
    assert list((hub.root / "tmp").rglob("up-*")) == []


def test_reads_without_rights_leak_nothing(hub):
    secret_chunks = [os.urandom(4000), os.urandom(4000)]
    xorb_hex, file_hex, digest = _publish(hub, "alice/private", "tok-alice", secret_chunks, private=True)
    _, pub_file, _ = _publish(hub, "alice/public", "tok-alice", [os.urandom(500)])
    # bob cannot get a token for alice's private repo: the same 404 as for a repo that does not exist
    s1, b1 = req(hub, "GET", "/api/models/alice/private/xet-read-token/main", token="tok-bob")
    s2, b2 = req(hub, "GET", "/api/models/alice/nothing/xet-read-token/main", token="tok-bob")
    assert s1 == s2 == 404 and b1 == b2
    assert req(hub, "GET", "/alice/private/resolve/main/w.bin", token="tok-bob")[0] == 404
    # with a token for a repo he may read, the private file is as unknown as a made-up one
    tok, cas = xet_token(hub, "alice/public", "read", "tok-bob")
    for path in (f"/v2/reconstructions/{file_hex}", f"/v1/reconstructions/{file_hex}"):
        status, body = req(hub, "GET", cas + path, token=tok)
        assert status == 404 and xorb_hex.encode() not in body
        assert req(hub, "GET", cas + path.replace(file_hex, "cd" * 32), token=tok)[1] == body.replace(
            file_hex.encode(), b"cd" * 32
        )
    assert req(hub, "HEAD", f"{cas}/v1/xorbs/default/{xorb_hex}", token=tok)[0] == 404
    assert req(hub, "GET", f"{cas}/v1/chunks/default/{ref_hex(ref_chunk_hash(secret_chunks[0]))}", token=tok)[0] == 404
    # a token is scoped to its repo and commit: alice's own token for the public repo cannot read the private file
    atok, _ = xet_token(hub, "alice/public", "read", "tok-alice")
    assert req(hub, "GET", f"{cas}/v2/reconstructions/{file_hex}", token=atok)[0] == 404
    status, body = req(hub, "GET", f"{cas}/v2/reconstructions/{pub_file}", token=atok)
    assert status == 200 and json.loads(body)["terms"]
    # the owner reads it, by ranges too; a range URL is bound to its bytes and signature
    otok, _ = xet_token(hub, "alice/private", "read", "tok-alice")
    status, body = req(
        hub, "GET", f"{cas}/v1/reconstructions/{file_hex}", token=otok, headers={"Range": "bytes=4100-4199"}
    )
    recon = json.loads(body)
    assert (
        status == 200
        and recon["offset_into_first_range"] == 100
        and recon["terms"][0]["range"] == {"start": 1, "end": 2}
    )
    (fetch,) = recon["fetch_info"][xorb_hex]
    lo, hi = fetch["url_range"]["start"], fetch["url_range"]["end"]
    status, got = req(hub, "GET", fetch["url"], headers={"Range": f"bytes={lo}-{hi}"})
    assert status == 206 and len(got) == hi - lo + 1
    assert req(hub, "GET", fetch["url"], headers={"Range": f"bytes=0-{hi}"})[0] == 403  # outside what was signed
    assert req(hub, "GET", fetch["url"].replace("&s=", "&s=0"), headers={"Range": f"bytes={lo}-{hi}"})[0] == 403
    assert (
        req(hub, "GET", f"{cas}/v1/reconstructions/{file_hex}", token=otok, headers={"Range": "bytes=8000-"})[0] == 416
    )
    # a plain HTTP range read of the reconstructed file
    status, got = req(
        hub, "GET", "/alice/private/resolve/main/w.bin", token="tok-alice", headers={"Range": "bytes=3990-4009"}
    )
    assert status == 206 and got == b"".join(secret_chunks)[3990:4010]


# -- crashes and a full disk --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kill_9_mid_xorb_upload_leaves_nothing_partial(tmp_path):
    root, port = tmp_path / "reg", _free_port()
    proc = subprocess.Popen(
        [str(BIN / "deltahub"), "hub", "serve", "--root", str(root), "--port", str(port), "--token", "tok-alice=alice"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/api/whoami-v2")
            except urllib.error.HTTPError:
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        srv = type("S", (), {"url": url})
        create_repo(srv, "k", "tok-alice")
        tok, cas = xet_token(srv, "alice/k", "write", "tok-alice")
        body, name = xorb_bytes([os.urandom(100_000) for _ in range(30)], [0] * 30)
        path = cas[len(url) :] + f"/v1/xorbs/default/{name}"
        sock = socket.create_connection(("127.0.0.1", port))
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {tok}\r\n"
        sock.sendall((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 2])
        deadline = time.monotonic() + 10
        while not any(p.stat().st_size > 0 for p in (root / "tmp").rglob("up-*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(p.stat().st_size > 0 for p in (root / "tmp").rglob("up-*"))  # what the kill left mid-body
    store = Store(root)  # a restart sweeps the dead process's temp folder
    try:
        assert [p for p in (root / "tmp").rglob("*") if p.is_file()] == []
        assert [p for p in (root / "xorbs").rglob("*") if p.is_file()] == []
        assert not store.xet.has_xorb(name) and store.check() == []
    finally:
        store.close()


def test_disk_full_refuses_a_xorb_with_507_and_keeps_nothing(tiny_disk):  # noqa: F811  (the imported fixture)
    srv = start_server(tiny_disk / "reg", open_mode=False, tokens=TOKENS)
    try:
        create_repo(srv, "f", "tok-alice")
        tok, cas = xet_token(srv, "alice/f", "write", "tok-alice")
        db = sqlite3.connect(tiny_disk / "reg" / "registry.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        filler = _fill(tiny_disk)
        body, name = xorb_bytes([os.urandom(60_000) for _ in range(20)], [0] * 20)
        status, payload = req(srv, "POST", f"{cas}/v1/xorbs/default/{name}", body, tok)
        assert status == 507 and b"registry disk full" in payload
        assert [p for p in (tiny_disk / "reg" / "xorbs").rglob("*") if p.is_file()] == []
        assert list((tiny_disk / "reg" / "tmp").rglob("up-*")) == []
        filler.unlink()
        assert req(srv, "POST", f"{cas}/v1/xorbs/default/{name}", body, tok)[0] == 200
    finally:
        srv.stop()
