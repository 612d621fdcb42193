"""Upload/download of one large file through huggingface_hub against `deltahub hub serve`: through Xet
(hf_xet, the default client) and through git-LFS (HF_HUB_DISABLE_XET=1), side by side with a plain copy,
and the storage Xet's chunk-level dedup saves when the file is uploaded again with 1 MiB per 64 changed.

Each round uploads a new random file into fresh repos (LFS first: an LFS upload of content already held
through Xet would be skipped) and downloads it with a fresh cache: the LFS file as a blob, the Xet file
natively (hf_xet) and by plain HTTP (the reconstructed bytes an older client gets). Rounds are paired:
the summary gives the mean Xet/LFS time ratio with a 95% interval (deltahub.stats, one group per round).
Throughput is also given as a ratio to the plain copy of the same round. The server's peak RSS is VmHWM.

    .venv/bin/python bench/hub_bench.py [--size-mb 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
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


def _stored(root: Path) -> int:
    return sum(p.stat().st_size for d in ("xorbs", "blobs") for p in (root / d).rglob("*") if p.is_file())


def _write(path: Path, size_mb: int, seed: int) -> None:
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size_mb):
            f.write(rnd.randbytes(1 << 20))


def _changed(src: Path, dest: Path) -> None:
    """``src`` with 1 MiB of new bytes in every 64 MiB (at least one change)."""
    shutil.copyfile(src, dest)
    size = src.stat().st_size
    with open(dest, "r+b") as f:
        for at in range(min(size // 2, 30 << 20), size, 64 << 20):
            f.seek(at)
            f.write(os.urandom(1 << 20))


def _serve(root: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("deltahub")
    proc = subprocess.Popen(
        [str(exe), "hub", "serve", "--root", str(root), "--port", str(port), "--open"], stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/api/whoami-v2").read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the registry did not start")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.pop("HF_HUB_DISABLE_XET", None)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    work = Path(tempfile.mkdtemp(prefix="hub-bench-", dir=os.environ.get("BENCH_DIR")))
    os.environ["HF_HOME"] = str(work / "hf")
    proc = None
    try:
        src, src2 = work / "big.bin", work / "big-v2.bin"
        proc, url = _serve(work / "reg")
        import huggingface_hub.constants as hc
        from huggingface_hub import HfApi, hf_hub_download

        from deltahub.stats import hierarchical_bootstrap

        api = HfApi(endpoint=url, token="bench")
        base_rss = _peak_rss_mb(proc.pid)
        rows: list[dict[str, float]] = []
        dedup: list[tuple[int, int]] = []
        for r in range(args.rounds):
            _write(src, args.size_mb, r)  # new content each round: nothing of it is stored yet
            row = {}
            row["copy"] = _timed(lambda: (shutil.copyfile(src, work / "copy.bin"), os.sync()))
            (work / "copy.bin").unlink()
            for mode in ("lfs", "xet"):
                hc.HF_HUB_DISABLE_XET = mode == "lfs"  # read by huggingface_hub on every call
                repo = f"bench/{mode}-{r}"
                api.create_repo(repo)
                row[f"up {mode}"] = _timed(
                    lambda repo=repo: api.upload_file(path_or_fileobj=str(src), path_in_repo="big.bin", repo_id=repo)
                )
            for name, mode, xet in (("down lfs", "lfs", False), ("down xet", "xet", True), ("down http", "xet", False)):
                hc.HF_HUB_DISABLE_XET = not xet
                cache = work / f"dl-{name}-{r}"
                repo = f"bench/{mode}-{r}"
                row[name] = _timed(
                    lambda repo=repo, cache=cache: hf_hub_download(
                        repo, "big.bin", endpoint=url, token="bench", cache_dir=cache
                    )
                )
                shutil.rmtree(cache)
            if r == 0:  # the file changed a little, uploaded again: what does it cost to store?
                _changed(src, src2)
                for mode in ("lfs", "xet"):
                    hc.HF_HUB_DISABLE_XET = mode == "lfs"
                    before = _stored(work / "reg")
                    api.upload_file(path_or_fileobj=str(src2), path_in_repo="big.bin", repo_id=f"bench/{mode}-{r}")
                    dedup.append((mode == "xet", _stored(work / "reg") - before))
            rows.append(row)
            print(f"round {r + 1}: " + "  ".join(f"{k} {v:.2f}s" for k, v in row.items()), flush=True)
        peak = _peak_rss_mb(proc.pid)

        mb = src.stat().st_size / 2**20
        print(f"\nfile: {mb:.0f} MB, {args.rounds} rounds (seconds: median; ratio: copy time / its time)")
        print(f"{'operation':<11}{'seconds':>9}{'MB/s':>8}{'x copy':>8}")
        for name in rows[0]:
            secs = sorted(row[name] for row in rows)[len(rows) // 2]
            copy = sorted(row["copy"] for row in rows)[len(rows) // 2]
            print(f"{name:<11}{secs:>9.2f}{mb / secs:>8.0f}{copy / secs:>8.2f}")
        print("\nXet / LFS time, paired by round (mean, 95% interval; < 1: Xet faster):")
        for what, a, b in (("upload", "up xet", "up lfs"), ("download", "down xet", "down lfs")):
            ci = hierarchical_bootstrap([[row[a] / row[b]] for row in rows])
            print(f"  {what:<9} {ci.estimate:.2f} [{ci.low:.2f}, {ci.high:.2f}]")
        ci = hierarchical_bootstrap([[row["down http"] / row["down lfs"]] for row in rows])
        print(f"  plain HTTP of a Xet file / LFS blob download: {ci.estimate:.2f} [{ci.low:.2f}, {ci.high:.2f}]")
        for xet in (True, False):
            added = [n for is_xet, n in dedup if is_xet == xet]
            mean = sum(added) / len(added) / 2**20
            print(
                f"re-upload with 1 MiB per 64 changed, {'Xet' if xet else 'LFS'}: stores {mean:.1f} MiB "
                f"of {mb:.0f} (dedup ratio {mb / max(mean, 1e-9):.1f}x)"
            )
        print(f"server peak RSS: {peak:.0f} MB (idle after start: {base_rss:.0f} MB)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
