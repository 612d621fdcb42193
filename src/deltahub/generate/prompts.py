"""Load prompts from a local JSONL/parquet file, a Hub dataset (``NAME[:SPLIT]``) or a pairs-style folder,
and map them to chat conversations; extra columns (e.g. ``answer``) ride along to the pairs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

TEXT_COLUMNS = ("prompt", "question", "instruction", "problem", "input", "query", "text")
MESSAGES_COLUMNS = ("messages", "conversation", "conversations")


@dataclass
class Prompts:
    """Conversations to answer (each ends with a user turn), the extra columns, and where they came from."""

    conversations: list[list[dict]]
    extras: list[dict]
    source: dict

    def __len__(self) -> int:
        return len(self.conversations)


def _split_spec(spec: str) -> tuple[str, str | None]:
    if Path(spec).exists():
        return spec, None
    name, sep, split = spec.rpartition(":")
    if sep and name and "/" not in split:
        return name, split
    return spec, None


def _read_local(path: Path) -> list[dict]:
    """Rows of a JSONL/parquet file, or of every such file under a folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = (
        [path]
        if path.is_file()
        else sorted(
            p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet") and not p.name.startswith(".")
        )
    )
    if not files:
        raise InputError(
            f"no JSONL or parquet prompts in {path}", "point --prompts at a .jsonl/.parquet file or folder"
        )
    rows: list[dict] = []
    for f in files:
        try:
            if f.suffix == ".parquet":
                rows.extend(pq.read_table(f).to_pylist())
            else:
                rows.extend(json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip())
        except (OSError, pa.ArrowException) as exc:  # before ValueError: ArrowInvalid is one
            raise InputError(
                f"cannot read prompts {f} ({str(exc).splitlines()[0]})", "give a readable .jsonl or .parquet file"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{f} is not valid JSONL ({str(exc).splitlines()[0]})", "write one JSON object per line (UTF-8)"
            ) from None
    return rows


def _read_rows(spec: str, split: str | None, revision: str | None) -> tuple[list[dict], dict]:
    name, spec_split = _split_spec(spec)
    split = split or spec_split
    path = Path(name)
    if path.exists():
        return _read_local(path), {"dataset": str(path), "split": split, "revision": None}
    from ..share.source import is_repo_spec

    if not is_repo_spec(name, (".jsonl", ".json", ".parquet")):  # the rules of every input (share.source)
        raise InputError(
            f"prompts {spec!r} not found", "give a local .jsonl/.parquet file or a dataset repo NS/NAME[@REV][:SPLIT]"
        )
    return _read_repo(name, split or "train", revision)


def _read_repo(name: str, split: str, revision: str | None) -> tuple[list[dict], dict]:
    """Rows of one split of a dataset repo, pulled through the registry client at one commit (recorded)."""
    import datasets

    from ..share.pull import pull_with_info

    spec = f"{name}@{revision}" if revision and "@" not in name else name
    local, repo, sha = pull_with_info(spec, repo_type="dataset")
    try:
        ds = datasets.load_dataset(str(local), split=split)
    except (ValueError, FileNotFoundError) as exc:  # no such split / no data files in the repo
        raise InputError(
            f"cannot read split {split!r} of {repo}@{sha[:12]}: {str(exc).splitlines()[0]}",
            "name an existing split (DATASET:SPLIT) of a repo with JSONL/parquet data files",
        ) from None
    return ds.to_list(), {"dataset": repo, "split": split, "revision": sha}


def _pick_column(spec: str, columns: list[str], prompt_column: str | None, messages_column: str | None) -> str:
    """The named column, or the first known prompt/messages column name."""
    if prompt_column and messages_column:
        raise InputError("both --prompt-column and --messages-column given", "pass only one of them")
    column = messages_column or prompt_column
    if column is None:
        column = next((c for c in MESSAGES_COLUMNS + TEXT_COLUMNS if c in columns), None)
        if column is None:
            raise InputError(
                f"no prompt column found among {columns}", "pass --prompt-column NAME or --messages-column NAME"
            )
    elif column not in columns:
        flag = "--messages-column" if messages_column else "--prompt-column"
        raise InputError(
            f"unknown column {column!r} in prompts {spec!r} (columns: {columns})", f"pass {flag} with one of {columns}"
        )
    return column


def _conversation(i: int, value, column: str, is_messages: bool) -> list[dict]:
    """Row ``i``'s chat turns, ending with a user turn."""
    if not is_messages:
        if not isinstance(value, str) or not value.strip():
            raise InputError(
                f"row {i}: prompt column {column!r} is empty or not text", "clean the prompts or pick another column"
            )
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        raise InputError(
            f"row {i}: column {column!r} is not a list of {{role, content}} messages",
            "use --prompt-column for a text column",
        )
    conv = [{"role": m["role"], "content": m["content"]} for m in value]
    while conv and conv[-1]["role"] == "assistant":
        conv.pop()
    if not conv:
        raise InputError(f"row {i}: no user turn in {column!r}", "remove empty conversations")
    return conv


def load_prompts(
    spec: str,
    *,
    split: str | None = None,
    revision: str | None = None,
    prompt_column: str | None = None,
    messages_column: str | None = None,
    system_prompt: str | None = None,
    limit: int | None = None,
) -> Prompts:
    """Read ``spec`` and build one conversation per row.

    ``prompt_column`` names a text column (the user turn); ``messages_column`` a list of chat turns
    (a trailing assistant turn is dropped so the models answer the last user turn). Without either,
    a known column name is picked (``messages``, ``prompt``, ``question``, ...).
    """
    rows, source = _read_rows(spec, split, revision)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise InputError(f"prompts {spec!r} are empty", "give a dataset with at least one row")
    column = _pick_column(spec, list(rows[0]), prompt_column, messages_column)
    is_messages = (
        messages_column is not None
        or (prompt_column is None and column in MESSAGES_COLUMNS)
        or isinstance(rows[0][column], list)
    )
    conversations, extras = [], []
    for i, row in enumerate(rows):
        conv = _conversation(i, row[column], column, is_messages)
        if system_prompt and conv[0]["role"] != "system":
            conv = [{"role": "system", "content": system_prompt}] + conv
        conversations.append(conv)
        extras.append({k: v for k, v in row.items() if k != column and k not in ("prompt", "chosen", "rejected")})
    source.update(column=column, count=len(conversations))
    return Prompts(conversations, extras, source)
