"""Read-through of one large file: plain download vs first (cold) and second (cached) read through a mirror.

Two `deltahub hub serve` processes on loopback: the upstream (holds the file) and the mirror
(`--upstream` pointing at it, holds nothing at start). A fresh client process downloads the file
with huggingface_hub three times, side by side in this run:
  plain   from the upstream directly;
  first   through the mirror, which fetches, verifies (sha256) and stores it while streaming it on;
  second  through the mirror again (served from its store, upstream not read).
Prints seconds, the ratio to plain, each client's peak RSS and the mirror's peak RSS (VmHWM).

    .venv/bin/python bench/upstream_bench.py [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from hub_bench import _peak_rss_mb  # VmHWM of a process (bench/ is on sys.path when run as a script)

CLIENT = """
import resource, sys, time
from huggingface_hub import hf_hub_download
t = time.perf_counter()
hf_hub_download("bench/big", "big.safetensors", endpoint=sys.argv[1], cache_dir=sys.argv[2])
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root: Path, env: dict, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    exe = Path(sys.executable).with_name("deltahub")
    proc = subprocess.Popen(
        [str(exe), "hub", "serve", "--root", str(root), "--port", str(port), "--open", *extra],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/api/whoami-v2").read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"registry at {url} did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="upstream-bench-", dir=os.environ.get("BENCH_DIR")))
    env = {
        **os.environ,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HOME": str(work / "hf"),
        "DELTAHUB_HOME": str(work / "home"),
    }
    procs: list[subprocess.Popen] = []
    try:
        src = work / "big.safetensors"
        digest = hashlib.sha256()
        with open(src, "wb") as f:
            for _ in range(args.size_mb):
                block = os.urandom(1 << 20)
                digest.update(block)
                f.write(block)
        upstream, up_url = _serve(work / "up", env, "--no-upstream")
        mirror, mirror_url = _serve(work / "mirror", env, "--upstream", up_url)
        procs += [upstream, mirror]
        os.environ.update(HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HOME=str(work / "hf"))
        from huggingface_hub import HfApi

        api = HfApi(endpoint=up_url, token="bench")
        api.create_repo("bench/big")
        api.upload_file(path_or_fileobj=str(src), path_in_repo="big.safetensors", repo_id="bench/big")
        mirror_start = _peak_rss_mb(mirror.pid)

        rows = []
        for name, url in (
            ("plain (from the upstream)", up_url),
            ("first read-through", mirror_url),
            ("second read (cached)", mirror_url),
        ):
            cache = work / f"client-{len(rows)}"
            out = subprocess.run(
                [sys.executable, "-c", CLIENT, url, str(cache)], env=env, capture_output=True, text=True, check=True
            )
            seconds, client_rss = (float(x) for x in out.stdout.split())
            got = next(cache.rglob("big.safetensors"))
            h = hashlib.sha256()
            with open(got, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            assert h.hexdigest() == digest.hexdigest(), f"{name}: content differs"
            rows.append((name, seconds, client_rss, _peak_rss_mb(mirror.pid)))
            shutil.rmtree(cache)
        plain = rows[0][1]
        print(
            f"{args.size_mb} MiB file, huggingface_hub {__import__('huggingface_hub').__version__}, "
            f"{os.cpu_count()} CPUs; mirror RSS at start {mirror_start:.0f} MiB"
        )
        print(
            f"{'download':28s} {'seconds':>8s} {'x plain':>8s} {'MiB/s':>8s} {'client peak RSS':>16s} "
            f"{'mirror peak RSS':>16s}"
        )
        for name, seconds, client_rss, mirror_rss in rows:
            print(
                f"{name:28s} {seconds:8.2f} {seconds / plain:8.2f} {args.size_mb / seconds:8.0f} "
                f"{client_rss:13.0f} MiB {mirror_rss:13.0f} MiB"
            )
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
