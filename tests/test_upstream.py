"""Read-through: the embedded registry fetches repos it does not hold from an upstream Hub.

The upstream is a second embedded registry on loopback (tokens mode, like the public Hub); the
client is the real huggingface_hub against the mirror, over real HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tracemalloc
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from deltahub.server import start_server
from deltahub.server.storage import Store

TOKEN = "tok-alice"


@pytest.fixture()
def upstream(tmp_path):
    srv = start_server(tmp_path / "up", open_mode=False, tokens={TOKEN: "alice", "tok-bob": "bob"})
    yield srv, HfApi(endpoint=srv.url, token=TOKEN)
    srv.stop()


@pytest.fixture()
def mirror(tmp_path, upstream):
    srv = start_server(tmp_path / "mirror", upstream=upstream[0].url)
    yield srv
    srv.stop()


def publish(api: HfApi, folder: Path, repo: str, files: dict[str, bytes], private: bool = False) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    api.create_repo(repo, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo, folder_path=str(folder)).oid


def test_a_mirror_serves_upstream_files_under_upstream_commit_sha(tmp_path, upstream, mirror):
    _, up = upstream
    files = {
        "config.json": b'{"hidden_size": 8}',
        "README.md": b"---\nlibrary_name: peft\n---\ncard\n",
        "weights.safetensors": os.urandom(300_000),
        "sub/notes.txt": b"nested",
    }
    sha = publish(up, tmp_path / "f", "alice/base", files)
    api = HfApi(endpoint=mirror.url, token="anything")
    info = api.model_info("alice/base", files_metadata=True)
    assert info.sha == sha and info.private is False and "peft" in info.tags
    up_info = up.model_info("alice/base", files_metadata=True)
    assert {(s.rfilename, s.size, s.blob_id) for s in info.siblings} == {
        (s.rfilename, s.size, s.blob_id) for s in up_info.siblings
    }
    local = Path(snapshot_download("alice/base", endpoint=mirror.url, cache_dir=str(tmp_path / "cache")))
    assert {p: (local / p).read_bytes() for p in files} == files
    assert [e.path for e in api.list_repo_tree("alice/base", recursive=True) if hasattr(e, "blob_id")] == [
        e.path for e in up.list_repo_tree("alice/base", recursive=True) if hasattr(e, "blob_id")
    ]
    assert [c.commit_id for c in api.list_repo_commits("alice/base")] == [sha]
    assert api.list_repo_refs("alice/base").branches[0].target_commit == sha
    store = Store(Path(mirror.root))
    assert store.mirror_of(store.get_repo("model", "alice", "base")) == upstream[0].url
    assert store.check() == []
    assert httpx2.get(f"{mirror.url}/alice/base").status_code == 200  # a public mirror has its web page too


def test_a_moved_revision_pinned_and_new(tmp_path, upstream, mirror):
    _, up = upstream
    old = publish(up, tmp_path / "f", "alice/base", {"config.json": b'{"v": 1}'})
    api = HfApi(endpoint=mirror.url)
    assert api.model_info("alice/base").sha == old
    new = publish(up, tmp_path / "f", "alice/base", {"config.json": b'{"v": 2}'})
    assert new != old

    def read(rev: str, n: int) -> int:
        got = hf_hub_download(
            "alice/base", "config.json", revision=rev, endpoint=mirror.url, cache_dir=str(tmp_path / f"c{n}")
        )
        return json.loads(Path(got).read_text())["v"]

    assert read(old, 1) == 1  # the pinned sha keeps its content
    assert api.model_info("alice/base").sha == new and read("main", 2) == 2  # a new resolve of main sees the new head
    assert read(old, 3) == 1


def test_upstream_down_names_the_repo_and_the_upstream_and_fails_fast(tmp_path, upstream, mirror):
    srv, up = upstream
    sha = publish(up, tmp_path / "f", "alice/base", {"config.json": b"{}"})
    api = HfApi(endpoint=mirror.url)
    assert api.model_info("alice/base").sha == sha
    srv.stop()
    t0 = time.perf_counter()
    with pytest.raises(RepositoryNotFoundError) as err:
        api.model_info("alice/other")
    assert time.perf_counter() - t0 < 10
    assert "alice/other" in str(err.value) and f"upstream {srv.url} is unreachable" in str(err.value)
    assert api.model_info("alice/base").sha == sha  # what was read before is still served, offline


def test_the_network_guard_counts_as_an_unreachable_public_hub(tmp_path):
    """Default upstream, in a test: the conftest guard refuses the connection; that is 'unreachable', fast."""
    with start_server(tmp_path / "m", upstream="https://huggingface.co") as srv:
        t0 = time.perf_counter()
        with pytest.raises(RepositoryNotFoundError, match="upstream https://huggingface.co is unreachable"):
            HfApi(endpoint=srv.url).model_info("Qwen/Qwen3-0.6B")
        assert time.perf_counter() - t0 < 5


def test_a_private_upstream_repo_stays_private_on_the_mirror(tmp_path, upstream, mirror):
    _, up = upstream
    secret = b"classified weights " * 1000
    sha = publish(
        up, tmp_path / "f", "alice/secret", {"w.safetensors": secret, "config.json": b'{"s": 1}'}, private=True
    )
    alice = HfApi(endpoint=mirror.url, token=TOKEN)
    assert alice.model_info("alice/secret").sha == sha and alice.model_info("alice/secret").private
    got = hf_hub_download(
        "alice/secret", "w.safetensors", endpoint=mirror.url, token=TOKEN, cache_dir=str(tmp_path / "a")
    )
    assert Path(got).read_bytes() == secret
    base = f"{mirror.url}/api/models/alice/secret"
    reads = [
        ("GET", base),
        ("GET", f"{base}/revision/{sha}"),
        ("GET", f"{base}/tree/{sha}"),
        ("GET", f"{base}/refs"),
        ("GET", f"{base}/commits/{sha}"),
        ("POST", f"{base}/paths-info/{sha}"),
        ("GET", f"{mirror.url}/alice/secret/resolve/{sha}/w.safetensors"),
        ("HEAD", f"{mirror.url}/alice/secret/resolve/main/config.json"),
    ]
    for who in (None, "tok-bob", "deltahub-open", "made-up"):
        headers = {"authorization": f"Bearer {who}"} if who else {}
        for method, url in reads:
            form = {"paths": ["w.safetensors"]} if method == "POST" else None
            r = httpx2.request(method, url, headers=headers, data=form)
            assert r.status_code == 404, (who, method, url, r.status_code)
            assert b"classified" not in r.content and b'"s": 1' not in r.content
        listing = httpx2.get(f"{mirror.url}/api/models", headers=headers).json()
        assert "alice/secret" not in [m["id"] for m in listing]
    assert "alice/secret" not in [m.id for m in alice.list_models()]  # listings never show private mirrors
    # nor do the web pages (a browser session has no upstream token): its own pages are 404s, listings omit it
    for page in (
        "/alice/secret",
        f"/alice/secret/tree/{sha}",
        f"/alice/secret/raw/{sha}/w.safetensors",
        f"/alice/secret/commits/{sha}",
    ):
        r = httpx2.get(mirror.url + page)
        assert r.status_code == 404 and b"classified" not in r.content, page
    for page in ("/", "/models", "/compose"):
        assert b"alice/secret" not in httpx2.get(mirror.url + page).content, page
    # nor can a local repo's commit name the private mirror's object to read it (the registry-security rule)
    oid = hashlib.sha256(secret).hexdigest()
    HfApi(endpoint=mirror.url, token="m").create_repo("mallory/x")
    lines = [
        {"key": "header", "value": {"summary": "x"}},
        {"key": "lfsFile", "value": {"path": "leak.bin", "algo": "sha256", "oid": oid, "size": len(secret)}},
    ]
    r = httpx2.post(
        f"{mirror.url}/api/models/mallory/x/commit/main",
        content="\n".join(map(json.dumps, lines)),
        headers={"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 422 and b"classified" not in r.content
    assert httpx2.get(f"{mirror.url}/mallory/x/resolve/main/leak.bin").status_code == 404


def test_a_mirror_is_read_only(tmp_path, upstream, mirror):
    _, up = upstream
    publish(up, tmp_path / "f", "alice/base", {"config.json": b"{}", "w.safetensors": b"not fetched yet"})
    api = HfApi(endpoint=mirror.url, token="anything")
    api.model_info("alice/base")
    r = httpx2.get(f"{mirror.url}/alice/base/raw/main/w.safetensors")  # the web page of a file not fetched yet
    assert r.status_code == 404 and "not fetched from the upstream yet" in r.text
    with pytest.raises(HfHubHTTPError, match="read-only mirror"):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/base")
    for pr in (False, True):  # no pull request or discussion either: they would never reach the upstream
        with pytest.raises(HfHubHTTPError, match="read-only mirror"):
            api.create_discussion("alice/base", title="t", pull_request=pr)
    with pytest.raises(HfHubHTTPError, match="read-only mirror"):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/base", create_pr=True)
    assert [e.path for e in up.list_repo_tree("alice/base")] == [".gitattributes", "config.json", "w.safetensors"]
    assert not list(up.get_repo_discussions("alice/base"))
    api.delete_repo("alice/base")  # a mirror is a copy: evicting it is allowed, and the next read fetches it again
    store = Store(Path(mirror.root))
    assert store.get_repo("model", "alice", "base") is None
    assert api.model_info("alice/base").sha == up.model_info("alice/base").sha
    assert store.mirror_of(store.get_repo("model", "alice", "base")) == up.endpoint
    store.close()


def test_tampered_upstream_content_is_refused(tmp_path, upstream, mirror):
    srv, up = upstream
    big = os.urandom(3 * 2**20 + 5)  # several chunks: the bad hash shows only after the client got most bytes
    publish(up, tmp_path / "f", "alice/base", {"w.safetensors": big, "config.json": b'{"a": 1}'})
    blob = Store(Path(srv.root)).blob_path(hashlib.sha256(big).hexdigest())
    blob.write_bytes(bytes([big[0] ^ 1]) + big[1:])  # same size, other bytes
    url = f"{mirror.url}/alice/base/resolve/main/w.safetensors"
    with pytest.raises(httpx2.RemoteProtocolError):  # the held-back last chunk never comes: the body is short
        httpx2.get(url)
    r = httpx2.get(url, headers={"range": "bytes=0-99"})  # ranged reads are fetched whole first: a clean error
    assert r.status_code == 502 and "does not match its sha256" in r.headers["x-error-message"]
    mirror_store = Store(Path(mirror.root))
    assert not mirror_store.has_blob(hashlib.sha256(big).hexdigest())
    assert list((Path(mirror.root) / "tmp").rglob("up-*")) == []  # nothing half-written is left behind
    cfg = Store(Path(srv.root)).blob_path(hashlib.sha256(b'{"a": 1}').hexdigest())
    cfg.write_bytes(b'{"a": 2}')  # a regular file whose git sha1 no longer matches
    publish(up, tmp_path / "g", "alice/other", {"config.json": b'{"a": 1}'})  # the upstream reuses that blob
    with pytest.raises(HfHubHTTPError, match="does not match its git sha1"):
        HfApi(endpoint=mirror.url).model_info("alice/other")
    assert mirror_store.get_repo("model", "alice", "other") is None


def _peak_download(endpoint: str, cache: Path) -> tuple[str, int]:
    tracemalloc.start()
    try:
        got = hf_hub_download("alice/big", "big.safetensors", endpoint=endpoint, cache_dir=str(cache))
        return got, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_file_streams_through_with_flat_memory(tmp_path, upstream, mirror):
    """64 MB through upstream -> mirror -> client, all in this process: the first read through the mirror
    allocates at most a quarter of the file more than a plain download from the upstream (the mirror
    tees 1 MB chunks to disk and to the client; it never holds the file)."""
    _, up = upstream
    size = 64 * 2**20
    path = tmp_path / "f" / "big.safetensors"
    path.parent.mkdir()
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size // 2**20):
            chunk = hashlib.sha256(str(i).encode()).digest() * (2**20 // 32)
            h.update(chunk)
            f.write(chunk)
    up.create_repo("alice/big")
    up.upload_file(path_or_fileobj=str(path), path_in_repo="big.safetensors", repo_id="alice/big")
    _, plain = _peak_download(upstream[0].url, tmp_path / "plain")
    got, through = _peak_download(mirror.url, tmp_path / "mirror")
    assert os.path.getsize(got) == size
    digest = hashlib.sha256()
    with open(got, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    assert digest.hexdigest() == h.hexdigest()
    assert Store(Path(mirror.root)).has_blob(h.hexdigest(), size)
    assert through - plain < size / 4, f"read-through peak {through / 2**20:.1f} MiB vs plain {plain / 2**20:.1f} MiB"


def test_writes_to_a_private_mirror_answer_outsiders_as_a_missing_repo(tmp_path, upstream, mirror):
    """'read-only mirror' would tell an outsider that someone here read the private upstream repo: outsiders get
    the missing repo's answer; who may read it upstream gets the refusal."""
    _, up = upstream
    publish(up, tmp_path / "f", "alice/secret", {"config.json": b"{}"}, private=True)
    HfApi(endpoint=mirror.url, token=TOKEN).model_info("alice/secret")  # alice reads it through: a private mirror
    writes = [
        ("POST", "/api/models/{}/discussions", {"title": "hello", "description": "x"}),
        ("PUT", "/api/models/{}/settings", {"private": False}),
        ("POST", "/api/models/{}/branch/x", {}),
    ]
    for method, path, body in writes:
        for who in (None, "tok-bob", "made-up"):
            headers = {"authorization": f"Bearer {who}"} if who else {}
            got = httpx2.request(method, mirror.url + path.format("alice/secret"), json=body, headers=headers)
            missing = httpx2.request(method, mirror.url + path.format("alice/secrex"), json=body, headers=headers)
            same = (missing.status_code, missing.content.replace(b"alice/secrex", b"alice/secret"))
            assert (got.status_code, got.content) == same and got.status_code == 404, (method, path, who, got.text)
        alice = httpx2.request(
            method, mirror.url + path.format("alice/secret"), json=body, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert alice.status_code == 403 and "read-only mirror" in alice.text
