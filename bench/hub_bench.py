"""Upload/download of one large file through huggingface_hub against `deltahub hub serve`.

Prints throughput as ratios to a plain file copy on the same disk (measured side by side in this
run) and the server process's peak memory (VmHWM). Targets: >= 0.30 of copy speed each way,
server peak RSS < 200 MB.

    .venv/bin/python bench/hub_bench.py [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    args = ap.parse_args()
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    work = Path(tempfile.mkdtemp(prefix="hub-bench-", dir=os.environ.get("BENCH_DIR")))
    os.environ["HF_HOME"] = str(work / "hf")
    try:
        src = work / "big.safetensors"
        with open(src, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        size = src.stat().st_size

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exe = Path(sys.executable).with_name("deltahub")
        proc = subprocess.Popen(
            [str(exe), "hub", "serve", "--root", str(work / "reg"), "--port", str(port), "--open"],
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/api/whoami-v2").read()
                break
            except OSError:
                time.sleep(0.1)
        from huggingface_hub import HfApi, hf_hub_download

        api = HfApi(endpoint=url, token="bench")
        api.create_repo("bench/big")
        base_rss = _peak_rss_mb(proc.pid)

        t = time.perf_counter()
        shutil.copyfile(src, work / "copy.bin")
        os.sync()
        t_copy = time.perf_counter() - t

        t = time.perf_counter()
        api.upload_file(path_or_fileobj=str(src), path_in_repo="big.safetensors", repo_id="bench/big")
        t_up = time.perf_counter() - t

        t = time.perf_counter()
        got = hf_hub_download("bench/big", "big.safetensors", endpoint=url, token="bench", cache_dir=work / "dl")
        t_down = time.perf_counter() - t
        assert Path(got).stat().st_size == size

        # the same GET with a plain stdlib client: separates server speed from huggingface_hub's overhead
        t = time.perf_counter()
        with (
            urllib.request.urlopen(f"{url}/bench/big/resolve/main/big.safetensors") as r,
            open(work / "raw.bin", "wb") as f,
        ):
            shutil.copyfileobj(r, f, 1 << 20)
        t_raw = time.perf_counter() - t
        peak = _peak_rss_mb(proc.pid)
        proc.terminate()
        proc.wait()

        mb = size / 2**20
        print(f"file: {mb:.0f} MB   (ratios are throughput / plain copy throughput, same disk, same run)")
        print(f"{'operation':<12}{'seconds':>10}{'MB/s':>10}{'ratio':>8}{'target':>8}")
        for name, secs in (("copy", t_copy), ("upload", t_up), ("download", t_down), ("raw GET", t_raw)):
            ratio = t_copy / secs
            print(f"{name:<12}{secs:>10.2f}{mb / secs:>10.0f}{ratio:>8.2f}{'' if name == 'copy' else '>=0.30':>8}")
        print(f"server peak RSS: {peak:.0f} MB (idle after start: {base_rss:.0f} MB; target < 200 MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
