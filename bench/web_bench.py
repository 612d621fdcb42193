"""Latency of the registry's web pages on a registry of 1,000 repos (issue #19: target < 100 ms a page).

Builds the registry through the store API (the same commits the client makes, minus HTTP): adapters
for several base models with cards rendered by deltahub's own card templates, pairs datasets with a
parquet shard each (distinct bytes, so no preview is shared), and plain models. Then serves it with
``deltahub hub serve`` in another process and times each page over one kept-alive connection:
median and p95 over ``--requests`` requests, and the first (cold) request apart. Repo and dataset
pages are timed over distinct repos, so each request renders a card (and a preview) not seen before.
The community pages too: ``PR_REPOS`` adapters get a pull request (a 120-line file added, a line of the
card changed) with ``COMMENTS`` Markdown comments and a closed discussion, and ``COLLECTIONS``
collections hold ``COLLECTION_ITEMS`` repos each.

    python bench/web_bench.py [--repos 1000] [--requests 50]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

BASES = [f"bench/Base-{i}B" for i in range(8)]
PR_REPOS, COMMENTS = 120, 6
COLLECTIONS, COLLECTION_ITEMS = 60, 20
COMMENT = (
    "Thanks for the **delta**: the margins look right.\n\n- beta 0.1\n- 1 epoch\n\n"
    "See [the card](README.md) and `training_curves.png`; <script>not run</script>\n"
)


def _lfs_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1000, 700), (240, 240, 250)).save(buf, format="PNG")
    return buf.getvalue()


def build(root: Path, repos: int) -> dict:
    """``repos`` repos: 80 % adapters over ``BASES``, 15 % pairs datasets, 5 % plain models."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deltahub.server.storage import Store, git_blob_oid
    from deltahub.share.cards import render_card

    store = Store(root)
    stage = root.parent / "stage"
    png, weights = _lfs_png(), os.urandom(64 * 1024)
    n_data, n_plain = repos * 15 // 100, repos * 5 // 100
    n_adapters = repos - n_data - n_plain
    names: dict[str, list[str]] = {"adapter": [], "dataset": [], "plain": []}
    made: list = []  # every repo, in order of creation

    def commit(rtype: str, name: str, files: dict[str, bytes], lfs: set[str]) -> None:
        repo = store.create_repo(rtype, "bench", name, False, "bench")
        made.append(repo)
        ops = []
        for path, data in files.items():
            sha = store.put_bytes(data)
            if path in lfs:
                store.record_upload(repo, sha)
            ops.append(
                {
                    "op": "add",
                    "path": path,
                    "sha256": sha,
                    "size": len(data),
                    "lfs": path in lfs,
                    "oid": git_blob_oid(data),
                }
            )
        store.commit(repo, "main", ops, "deltahub publish", "", "bench", None)

    folder = stage / "adapter"
    folder.mkdir(parents=True)
    for i in range(n_adapters):
        base = BASES[i % len(BASES)]
        block = {
            "schema_version": 1,
            "kind": "adapter",
            "chosen": {"model": f"org/Qwen3-big-{i}"},
            "rejected": {"model": "org/Qwen3-small"},
            "student": {"model": base},
            "pairs": 1000 + 37 * i,
            "training": {"objective": ["dpo", "simpo"][i % 2], "beta": 0.1, "epochs": 1, "lr": 5e-6},
            "lora": {"r": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
            "dataset": {"repo": f"bench/pairs-{i % max(n_data, 1):04d}", "revision": "main"},
            "gain": {"metric": "accuracy", "value": round((i % 17 - 5) / 400, 4), "baseline": 0.5},
        }
        (folder / "deltahub.json").write_text(json.dumps(block))
        (folder / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": base, "r": 16, "peft_type": "LORA"})
        )
        (folder / "training_curves.png").write_bytes(png)
        name = f"delta-{i:04d}"
        commit(
            "model",
            name,
            {
                "README.md": render_card(folder).encode(),
                "deltahub.json": json.dumps(block).encode(),
                "adapter_config.json": (folder / "adapter_config.json").read_bytes(),
                "adapter_model.safetensors": weights,
                "training_curves.png": png,
            },
            {"adapter_model.safetensors", "training_curves.png"},
        )
        names["adapter"].append(name)
    folder = stage / "dataset"
    (folder / "data").mkdir(parents=True)
    for i in range(n_data):
        block = {
            "schema_version": 1,
            "kind": "dataset",
            "chosen": {"model": f"org/Qwen3-big-{i}"},
            "rejected": {"model": "org/Qwen3-small"},
            "prompts": {"dataset": "org/prompts", "split": "train"},
            "pairs": 200,
            "filters": {"empty": i % 5, "identical": 2},
        }
        (folder / "deltahub.json").write_text(json.dumps(block))
        rows = [
            {
                "prompt": [{"role": "user", "content": f"dataset {i} question {j}: " + "word " * 40}],
                "chosen": [{"role": "assistant", "content": "a long and careful answer " * 20}],
                "rejected": [{"role": "assistant", "content": "a short answer " * 10}],
            }
            for j in range(200)
        ]
        shard = folder / "data" / "train-00000.parquet"
        pq.write_table(pa.Table.from_pylist(rows), shard)
        name = f"pairs-{i:04d}"
        commit(
            "dataset",
            name,
            {
                "README.md": render_card(folder).encode(),
                "deltahub.json": json.dumps(block).encode(),
                "data/train-00000.parquet": shard.read_bytes(),
            },
            {"data/train-00000.parquet"},
        )
        names["dataset"].append(name)
    for i in range(n_plain):
        name = f"plain-{i:04d}"
        commit(
            "model",
            name,
            {"README.md": f"---\nlicense: mit\n---\n# {name}\n\nA plain model.\n".encode(), "config.json": b"{}"},
            set(),
        )
        names["plain"].append(name)
    names["collections"] = _community(store, made)
    store.close()
    shutil.rmtree(stage)
    return names


def _community(store, repos: list) -> list[str]:
    """Pull requests, comments and a discussion on the first ``PR_REPOS`` repos; the collections' slugs."""
    from deltahub.server.collection_store import Collections
    from deltahub.server.discussion_store import Discussions
    from deltahub.server.storage import git_blob_oid

    talk, curated = Discussions(store), Collections(store)
    notes = "".join(f"line {j}: a note on the training run\n" for j in range(120)).encode()
    for repo in repos[:PR_REPOS]:
        card = store.read_blob(store.tree(store.resolve(repo, "main"))["README.md"].sha256)
        card = card.replace(b"delta", b"preference delta", 1)
        ops = [
            {
                "op": "add",
                "path": p,
                "sha256": store.put_bytes(data),
                "size": len(data),
                "lfs": False,
                "oid": git_blob_oid(data),
            }
            for p, data in (("NOTES.md", notes), ("README.md", card))
        ]
        num, _ = talk.open_with_commit(repo, "main", ops, "Add notes", COMMENT, "reviewer", lambda ns, private: True)
        for _ in range(COMMENTS - 1):
            talk.comment(repo, num, "bench", COMMENT)
        asked = talk.open(repo, "A question", COMMENT, "reviewer", is_pr=False)
        talk.set_status(repo, asked, "closed", "bench", "answered")
    slugs = []
    for i in range(COLLECTIONS):
        c = curated.create("bench", f"Collection {i}", "deltas that compose", False)
        for j in range(COLLECTION_ITEMS):
            repo = repos[(i * 7 + j * 13) % len(repos)]
            curated.add_item(c, repo.type, str(repo.id), f"note {j}")
        slugs.append(c.slug)
    return slugs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(conn: http.client.HTTPConnection, path: str) -> float:
    t = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    took = time.perf_counter() - t
    if r.status != 200:
        raise RuntimeError(f"GET {path} -> {r.status}: {body[:200]!r}")
    return took


def _row(name: str, times: list[float], cold: float) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    verdict = "ok" if p95 < 100 else "SLOW"
    return f"{name:<34} {statistics.median(ms):>8.1f} {p95:>8.1f} {cold * 1000:>9.1f}   {verdict}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="web-bench-"))
    proc = None
    try:
        t = time.perf_counter()
        names = build(work / "registry", args.repos)
        print(
            f"built {args.repos} repos ({len(names['adapter'])} adapters over {len(BASES)} bases, "
            f"{len(names['dataset'])} datasets, {len(names['plain'])} plain) in {time.perf_counter() - t:.1f} s"
        )
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deltahub",
                "hub",
                "serve",
                "--root",
                str(work / "registry"),
                "--port",
                str(port),
                "--open",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the registry did not start: " + proc.stderr.read().decode()[-2000:]) from None
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = args.requests
        base = BASES[0]
        five = [f"bench/{d}" for d in names["adapter"][: len(BASES) * 5 : len(BASES)]]
        compose = "/compose?" + urlencode(
            [("base", base), *(("d", d) for d in five), ("method", "gam"), ("p:reference", "auto"), ("p:scale", "1.0")]
        )
        fixed = {
            "home (1,000 repos, page 1)": "/",
            "search ?q=qwen3-big-77 (cards)": "/?q=" + quote("qwen3-big-77"),
            "home ?base=&sort=gain&min_pairs": "/?" + urlencode({"base": base, "sort": "gain", "min_pairs": 5000}),
            "compose (5 deltas, gam)": compose,
            "compose, choose a base": "/compose",
            f"collections ({COLLECTIONS} of {COLLECTION_ITEMS}, page 1)": "/collections",
        }
        distinct = {
            "repo page (distinct repos)": [f"/bench/{d}" for d in names["adapter"]],
            "dataset page (distinct, preview)": [f"/datasets/bench/{d}" for d in names["dataset"]],
            "files tab (distinct repos)": [f"/bench/{d}/tree/main" for d in reversed(names["adapter"])],
            "history tab (distinct repos)": [f"/bench/{d}/commits/main" for d in names["adapter"][1::2]],
            "discussions list (distinct repos)": [
                f"/bench/{d}/discussions?status=all" for d in names["adapter"][:PR_REPOS]
            ],
            f"pull request ({COMMENTS} comments, diff)": [
                f"/bench/{d}/discussions/1" for d in names["adapter"][:PR_REPOS]
            ],
            "collection page (distinct)": [f"/collections/{slug}" for slug in names["collections"]],
        }
        print(f"\n{'page':<34} {'median':>8} {'p95':>8} {'first':>9}   (ms; {n} requests each; target < 100 ms)")
        for name, path in fixed.items():
            cold = _get(conn, path)
            print(_row(name, [_get(conn, path) for _ in range(n)], cold))
        for name, paths in distinct.items():
            cold = _get(conn, paths[0])
            print(_row(name, [_get(conn, p) for p in paths[1 : n + 1]], cold))
        conn.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
