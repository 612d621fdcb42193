"""Database cost of history in the embedded registry: bytes of registry.db per 1-file commit on a big repo.

Builds one repo of ``--files`` files (one commit through the store), then makes ``--commits`` commits
that each change one file, and prints the database growth per commit (after a WAL checkpoint) and the
time of the reads a client makes (info, HEAD resolve, recursive tree) through the HTTP server.

    python bench/registry_db_bench.py [--files 50000] [--commits 20]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path


def _db_bytes(root: Path) -> int:
    """Bytes of the database's pages in use (file size less free pages), after a WAL checkpoint."""
    db = sqlite3.connect(root / "registry.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
    size = pages * db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    return size


def _timed(url: str, method: str = "GET", reps: int = 5) -> float:
    """Median seconds of ``reps`` requests (the body read in full)."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, method=method)) as r:
            r.read()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--commits", type=int, default=20)
    args = ap.parse_args()

    from deltahub.server import start_server
    from deltahub.server.storage import Store, git_blob_oid

    work = Path(tempfile.mkdtemp(prefix="registry-db-bench-"))
    try:
        root = work / "reg"
        store = Store(root)
        repo = store.create_repo("model", "bench", "wide", False, "bench")

        def add(path: str, data: bytes) -> dict:
            sha = store.put_bytes(data)
            return {
                "op": "add",
                "path": path,
                "sha256": sha,
                "size": len(data),
                "lfs": False,
                "oid": git_blob_oid(data),
            }

        same = add("x", b"same bytes in every file\n")
        ops = [dict(same, path=f"data/part-{i // 1000:03d}/file-{i:06d}.json") for i in range(args.files)]
        t = time.perf_counter()
        store.commit(repo, "main", ops, "many files", "", "bench", None)
        t_big = time.perf_counter() - t
        start = _db_bytes(root)
        t = time.perf_counter()
        for i in range(args.commits):
            data = f"change {i}\n".encode()
            store.commit(repo, "main", [add("data/part-000/file-000000.json", data)], f"c{i}", "", "bench", None)
        t_small = (time.perf_counter() - t) / args.commits
        per_commit = (_db_bytes(root) - start) / args.commits

        with start_server(root) as srv:
            base = f"{srv.url}/api/models/bench/wide"
            t_info = _timed(base)
            t_head = _timed(f"{srv.url}/bench/wide/resolve/main/data/part-000/file-000000.json", "HEAD")
            t_tree = _timed(f"{base}/tree/main?recursive=true", reps=3)
            with urllib.request.urlopen(f"{srv.url}/bench/wide/resolve/main/data/part-000/file-000000.json") as r:
                assert (
                    hashlib.sha256(r.read()).hexdigest()
                    == hashlib.sha256(f"change {args.commits - 1}\n".encode()).hexdigest()
                )

        print(f"repo: {args.files} files, then {args.commits} commits of 1 file each")
        print(f"registry.db after the big commit: {start / 2**20:.1f} MiB ({t_big:.1f} s)")
        print(f"registry.db growth per 1-file commit: {per_commit / 1024:.1f} KiB ({t_small * 1000:.0f} ms per commit)")
        print(
            f"reads (median): info {t_info * 1000:.0f} ms, HEAD resolve {t_head * 1000:.1f} ms, "
            f"recursive tree {t_tree * 1000:.0f} ms"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
