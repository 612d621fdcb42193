"""The Xet tables of registry.db (added by schema version 4, see migrate.py).

Hashes are stored as their Xet strings (``hashing.to_hex``), which is also how the API names them.
- ``xet_xorbs``/``xet_chunks``: each stored xorb (its chunk region lies in ``xorbs/``) and its chunks in
  order: hash, byte range in the region, raw size; chunks are indexed by hash for the dedup query.
- ``xet_xorb_repos``: which repos a xorb was uploaded through (bytes that hash to it prove possession).
- ``xet_files``/``xet_terms``: each file reconstruction a verified shard registered: Xet hash, sha256, size,
  and its terms in order. Which repos may use a file is ``repo_objects`` (by sha256), as for LFS objects.
"""

from __future__ import annotations

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS xet_xorbs (
      hash TEXT PRIMARY KEY, chunks INTEGER NOT NULL, raw_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL,
      created REAL NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS xet_chunks (
      xorb TEXT NOT NULL, idx INTEGER NOT NULL, hash TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
      size INTEGER NOT NULL, PRIMARY KEY (xorb, idx)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS xet_chunks_hash ON xet_chunks(hash)",
    """CREATE TABLE IF NOT EXISTS xet_xorb_repos (
      xorb TEXT NOT NULL, repo INTEGER NOT NULL, PRIMARY KEY (xorb, repo)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS xet_xorb_repos_repo ON xet_xorb_repos(repo)",
    """CREATE TABLE IF NOT EXISTS xet_files (
      hash TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS xet_files_sha ON xet_files(sha256)",
    """CREATE TABLE IF NOT EXISTS xet_terms (
      file TEXT NOT NULL, n INTEGER NOT NULL, xorb TEXT NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
      size INTEGER NOT NULL, PRIMARY KEY (file, n)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS xet_terms_xorb ON xet_terms(xorb)",
)
# what a repo owns here, by (table, column holding the repo id): deleted with it (migrate.REPO_TABLES)
REPO_TABLES = (("xet_xorb_repos", "repo"),)
