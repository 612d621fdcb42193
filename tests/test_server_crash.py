"""The server process killed in the middle of an LFS upload: the store stays consistent, the retry succeeds."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deltahub.server.storage import Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("deltahub")
    proc = subprocess.Popen(
        [str(exe), "hub", "serve", "--root", str(root), "--port", str(port), "--open"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/whoami-v2").read()
            return proc
        except OSError:
            assert proc.poll() is None, "server exited"
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


@pytest.mark.slow
def test_kill_mid_upload_then_restart_and_retry(tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    root = tmp_path / "reg"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(root, port)
    try:
        api = HfApi(endpoint=url, token="any")
        api.create_repo("alice/crash")
        api.upload_file(path_or_fileobj=b"v1", path_in_repo="note.txt", repo_id="alice/crash")
        head = api.model_info("alice/crash").sha

        data = os.urandom(3_000_000)
        oid = hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(
            f"{url}/alice/crash.git/info/lfs/objects/batch",
            method="POST",
            data=json.dumps({"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        href = json.loads(urllib.request.urlopen(req).read())["objects"][0]["actions"]["upload"]["href"]
        target = href[len(url) :]
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n\r\n".encode())
        sock.sendall(data[: len(data) // 2])
        tmp_dir = root / "tmp"
        deadline = time.monotonic() + 10
        while not any(p.stat().st_size > 0 for p in tmp_dir.rglob("up-*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-PUT: half the body is on disk in a temp file
        proc.wait()
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()

    assert any(p.stat().st_size > 0 for p in tmp_dir.rglob("up-*"))  # the partial upload the kill left
    store = Store(root)  # what a restart does first: the dead process's temp folder is swept
    assert [p for p in tmp_dir.rglob("*") if p.is_file()] == []
    assert store.check() == []
    assert not store.has_blob(oid)  # no partial object visible under its name
    store.close()
    proc = _serve(root, port)
    try:
        api = HfApi(endpoint=url, token="any")
        assert api.model_info("alice/crash").sha == head
        assert api.list_repo_files("alice/crash") == [".gitattributes", "note.txt"]
        src = tmp_path / "w.safetensors"
        src.write_bytes(data)
        api.upload_file(path_or_fileobj=str(src), path_in_repo="w.safetensors", repo_id="alice/crash")
        got = hf_hub_download("alice/crash", "w.safetensors", endpoint=url, token="any", cache_dir=tmp_path / "c")
        assert hashlib.sha256(Path(got).read_bytes()).hexdigest() == oid
        assert Store(root).check() == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
