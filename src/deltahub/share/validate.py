"""Check a delta folder before trusting it: schema, safe files, shapes vs the declared base, NaN/Inf, card.

Everything is read from small files: the base model's ``config.json`` is enough to know every
projection's shape, so the base weights are never downloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..endpoint import Endpoint, api
from ..errors import DeltahubError, InputError
from ..weights import check_safetensors, read_adapter_config
from .cards import split_card
from .hub_errors import if_exists
from .network import retrying
from .provenance import Declared
from .schema import parse_block

SAFE_SUFFIXES = {
    ".safetensors",
    ".json",
    ".md",
    ".png",
    ".jpg",
    ".parquet",
    ".jsonl",
    ".txt",
    ".yml",
    ".yaml",
    ".gitattributes",
    ".model",
    ".jinja",
}
UNSAFE_SUFFIXES = {
    ".bin",
    ".pt",
    ".pth",
    ".pkl",
    ".pickle",
    ".ckpt",
    ".npy",
    ".npz",
    ".joblib",
    ".py",
    ".so",
    ".sh",
    ".h5",
    ".msgpack",
}
CARD_KEYS = {
    "adapter": ("base_model", "library_name", "tags"),
    "dataset": ("task_categories", "configs", "tags"),
    "merged": ("tags",),
}


Status = Literal["pass", "warn", "fail"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Not a failure (a warning is ok unless the report is strict)."""
        return self.status != "fail"


@dataclass
class Report:
    """The checklist. ``strict`` (CI gates) turns warnings, such as a dataset not published yet, into failures."""

    target: str
    kind: str | None = None
    checks: list[Check] = field(default_factory=list)
    strict: bool = False
    measured: dict[str, Any] = field(default_factory=dict)  # facts the checks established (pairs counted)

    @property
    def ok(self) -> bool:
        return all(c.status == "pass" or (c.status == "warn" and not self.strict) for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail" or (self.strict and c.status == "warn")]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    def add(self, name: str, ok: bool | Status, detail: str = "") -> None:
        status = ok if isinstance(ok, str) else ("pass" if ok else "fail")
        self.checks.append(Check(name, status, detail))

    def lines(self) -> list[str]:
        out = [f"{c.status.upper()}  {c.name}{': ' + c.detail if c.detail else ''}" for c in self.checks]
        warned = f", {len(self.warnings)} warning(s){' (strict: counted as failures)' if self.strict else ''}"
        out.append(
            f"verdict: {'PASS' if self.ok else 'FAIL'} ({len(self.failed)} failed of {len(self.checks)}"
            f"{warned if self.warnings else ''})"
        )
        return out


class ValidationFailed(InputError):
    """A delta that failed validation was refused (publish, submit, collection add); ``report`` is the checklist."""

    def __init__(
        self,
        report: Report,
        outcome: str = "nothing was published",
        fix: str = "fix what the checklist says (deltahub validate FOLDER), or pass --no-validate to "
        "publish anyway with a warning on the card",
    ):
        names = ", ".join(c.name for c in report.failed)
        super().__init__(
            f"{report.target} failed validation ({len(report.failed)} of {len(report.checks)} checks: "
            f"{names}); {outcome}",
            fix,
        )
        self.report = report


def _files(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.parts and ".git" not in p.parts
    )


def check_files(files: list[str]) -> tuple[bool, str]:
    """Safetensors only: no pickles, no custom code."""

    def unsafe(name: str) -> bool:
        suffix, base = Path(name).suffix.lower(), Path(name).name
        return suffix in UNSAFE_SUFFIXES or (suffix not in SAFE_SUFFIXES and "." in base and not base.startswith("."))

    bad = [f for f in files if unsafe(f)]
    return not bad, (
        f"unsafe or unknown files: {', '.join(bad[:5])}" if bad else f"{len(files)} files, no pickles or code"
    )


_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$")


def expected_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """(out, in) of each linear projection suffix for a decoder-only transformer config (Llama/Qwen/Mistral style)."""
    cfg = config.get("text_config", config)
    h = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    kv = int(cfg.get("num_key_value_heads") or heads)
    hd = int(cfg.get("head_dim") or h // heads)
    inter = int(cfg.get("intermediate_size") or 4 * h)
    return {
        "q_proj": (heads * hd, h),
        "k_proj": (kv * hd, h),
        "v_proj": (kv * hd, h),
        "o_proj": (h, heads * hd),
        "gate_proj": (inter, h),
        "up_proj": (inter, h),
        "down_proj": (h, inter),
    }


def check_adapter_shapes(folder: Path, base_config: dict) -> tuple[bool, str]:
    """Every LoRA module name exists in the base (layer index, projection) and its A/B shapes match."""
    from safetensors import safe_open

    cfg = base_config.get("text_config", base_config)
    layers = int(cfg.get("num_hidden_layers", 0))
    shapes = expected_shapes(base_config)
    problems: list[str] = []
    n = 0
    for st in sorted(folder.glob("*.safetensors")):
        with safe_open(str(st), "pt") as f:
            for key in f.keys():
                m = _LORA_KEY.match(key)
                if not m:
                    continue
                n += 1
                module, which = m.group(1), m.group(2)
                shape = tuple(f.get_slice(key).get_shape())
                proj = module.rsplit(".", 1)[-1]
                layer = re.search(r"\.layers\.(\d+)\.", module)
                if proj not in shapes or layer is None or int(layer.group(1)) >= layers:
                    problems.append(f"{module} is not a module of the base")
                    continue
                out_f, in_f = shapes[proj]
                if (which == "A" and shape[1] != in_f) or (which == "B" and shape[0] != out_f):
                    side, need = ("in", in_f) if which == "A" else ("out", out_f)
                    problems.append(f"{module}.lora_{which} has shape {list(shape)}, base needs {side}={need}")
    if n == 0:
        return False, "no LoRA weights found in *.safetensors"
    return (not problems, "; ".join(problems[:3]) if problems else f"{n} LoRA tensors match the base config")


def check_finite(folder: Path) -> tuple[bool, str]:
    """No NaN/Inf in any safetensors tensor (read one tensor at a time: a full model never sits in memory)."""
    import torch
    from safetensors import safe_open

    bad = []
    for st in sorted(folder.rglob("*.safetensors")):
        with safe_open(str(st), "pt") as f:
            for key in f.keys():
                t = f.get_tensor(key)
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    bad.append(key)
    return (not bad, f"non-finite values in {', '.join(bad[:3])}" if bad else "all tensors finite")


def count_rows(folder: Path) -> int:
    """Rows in a pairs folder's data/*.parquet (from parquet metadata, no data read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(str(p)).metadata.num_rows for p in sorted(folder.glob("data/*.parquet")))


def validate_folder(
    folder: Path,
    base_config: Callable[[str], dict | None] | None = None,
    dataset_rows: Callable[[str, str | None], int | None] | None = None,
    target: str | None = None,
    local: bool = False,
    strict: bool = False,
) -> Report:
    """Run every check on a delta folder. ``base_config(model_id)`` returns the base's config.json
    (or None if unknown); ``dataset_rows(repo, revision)`` the linked dataset's row count (None: missing).
    ``local``: the folder is not published yet, so a linked dataset the registry does not hold yet is a
    warning ("not published yet"), not a failure; ``strict`` makes every warning a failure.

    Files no check can read (damaged safetensors, an adapter_config.json that is not a JSON object) are
    an InputError, not a verdict: there is nothing to judge until they are replaced.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DeltahubError(f"{folder} is not a folder", "pass a delta folder or a repo id NS/NAME")
    check_safetensors(
        sorted(folder.rglob("*.safetensors")),
        "weights file",
        "re-download the delta (deltahub pull) or regenerate it; the file is damaged",
    )
    adapter_config = read_adapter_config(folder)
    report = Report(target or str(folder), strict=strict)
    block = _check_schema(folder, report)
    report.add("files are safetensors only", *check_files(_files(folder)))
    kind = report.kind or (
        "adapter" if adapter_config is not None else "dataset" if (folder / "data").is_dir() else None
    )
    if kind in ("adapter", "merged") and adapter_config is not None:
        report.add("adapter matches its base", *_check_base(folder, adapter_config, base_config))
    merged_output = getattr(block.merge, "output", None) if block is not None and block.merge is not None else None
    is_adapter = kind == "adapter" or (kind == "merged" and merged_output != "full-model")
    if is_adapter and adapter_config is None:
        report.add("adapter matches its base", False, "adapter_config.json is missing (not a PEFT adapter folder)")
    if kind == "adapter" and block is not None:
        report.add("linked dataset", *_check_dataset_link(block, dataset_rows, local, report.measured))
    if kind == "dataset" and block is not None:
        rows = count_rows(folder)
        report.add("row count matches the card", rows == block.pairs, f"{rows} rows, card says {block.pairs}")
    report.add("no NaN/Inf", *check_finite(folder))
    report.add(*_card_check(folder, kind))
    return report


def _check_schema(folder: Path, report: Report):
    """Parse the deltahub block (deltahub.json, else the card's front matter); record the verdict."""
    try:
        path = folder / "deltahub.json"
        raw = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        readme = folder / "README.md"
        meta = split_card(readme.read_text(encoding="utf-8"))[0] if readme.is_file() else {}
        raw = raw if raw is not None else meta.get("deltahub")
        if raw is None:
            report.add("schema", False, "no deltahub.json and no deltahub: block in the card (not a delta)")
            return None
        block = parse_block(raw)
    except (DeltahubError, ValueError, UnicodeDecodeError) as exc:
        report.add("schema", False, str(getattr(exc, "message", exc)).splitlines()[0])
        return None
    report.kind = block.kind
    report.add("schema", True, f"schema_version {block.schema_version}, kind {block.kind}")
    return block


def _check_base(folder: Path, adapter_config: dict, base_config) -> tuple[bool, str]:
    """The adapter's LoRA modules and shapes against its declared base's config.json."""
    base = adapter_config.get("base_model_name_or_path")
    cfg = None
    if base and Path(base, "config.json").is_file():
        cfg = json.loads(Path(base, "config.json").read_text(encoding="utf-8"))
    elif base and base_config is not None:
        cfg = base_config(base)
    if cfg is None:
        return False, f"cannot read config.json of base '{base}'"
    try:
        return check_adapter_shapes(folder, cfg)
    except (KeyError, ValueError, TypeError) as exc:
        return False, f"base config lacks {exc}"


def _check_dataset_link(block, dataset_rows, local: bool, measured: dict) -> tuple[bool | Status, str]:
    """The pairs dataset the adapter names exists and has the row count of the card (counted rows go to
    ``measured``). No link, or locally a dataset not published yet, is a warning: provenance unknown."""
    link = block.dataset
    if link is None or not link.repo:
        return "warn", (
            "no pairs dataset linked yet (publish it, then pass --dataset REPO[@REV])"
            if local
            else "no pairs dataset linked: the delta's provenance is unknown"
        )
    rows = dataset_rows(link.repo, link.revision) if dataset_rows else None
    if rows is None:
        at = f"@{link.revision}" if link.revision else ""
        if local:
            return "warn", f"{link.repo}{at} is not published yet (publish it before the adapter)"
        return False, f"dataset {link.repo}{at} not found"
    if block.pairs is not None and rows != block.pairs:
        return False, f"{link.repo} has {rows} rows, the card says {block.pairs}"
    measured["pairs"] = rows
    return True, f"{link.repo}: {rows} rows"


def _card_check(folder: Path, kind: str | None) -> tuple[str, bool, str]:
    readme = folder / "README.md"
    if not readme.is_file():
        return "card complete", False, "README.md is missing"
    try:
        meta, body = split_card(readme.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return "card complete", False, "README.md is not UTF-8 text"
    missing = [k for k in CARD_KEYS.get(kind or "", ("tags",)) if not meta.get(k)]
    if "deltahub" not in meta:
        missing.append("deltahub block")
    if "deltahub" not in (meta.get("tags") or []):
        missing.append("tag deltahub")
    if len(body.strip()) < 40:
        missing.append("body text")
    detail = f"missing {', '.join(missing)}" if missing else "metadata, tags and body present"
    return "card complete", not missing, detail


def validate(
    target: str | Path, strict: bool = False, declared: Declared | None = None, endpoint: Endpoint | None = None
) -> Report:
    """Validate a local folder as it would be published (with ``declared`` provenance applied), or a published
    ``NS/NAME[@REV]`` (pulled to a temporary folder; of its base only config.json is read)."""
    import tempfile

    from .stage import staged

    hub = api(endpoint)
    if Path(target).exists():
        from .bases import base_problem, trained_on

        with staged(Path(target), declared, refuse_local_base=False) as stage:
            report = validate_on_registry(
                stage, str(target), local=True, strict=strict, base_folder=trained_on(Path(target)), hub=hub
            )
            problem = base_problem(stage)
            if report.kind in ("adapter", "merged"):
                report.add("base named by a repo id", problem is None, problem or "the card names a repo id")
            return report
    from .pull import pull

    with tempfile.TemporaryDirectory(prefix="deltahub-validate-") as tmp:
        folder = pull(str(target), out=Path(tmp) / "delta", endpoint=endpoint)
        return validate_on_registry(folder, str(target), strict=strict, hub=hub)


def validate_on_registry(
    folder: Path, target: str, local: bool = False, strict: bool = False, base_folder: Path | None = None, hub=None
) -> Report:
    """:func:`validate_folder` with the base config and the linked dataset looked up on the registry;
    ``base_folder``: the local copy the adapter was trained on, whose config.json answers when the registry
    does not hold the base it is published for (bases.py); ``hub``: the client of the registry (default:
    this process's endpoint)."""
    hub = hub or api()

    def base_config(model_id: str) -> dict | None:
        found = _hub_config(hub, model_id)
        if found is None and base_folder is not None and (base_folder / "config.json").is_file():
            return json.loads((base_folder / "config.json").read_text(encoding="utf-8"))
        return found

    return validate_folder(
        folder,
        base_config=base_config,
        dataset_rows=lambda repo, revision: _hub_rows(hub, repo, revision),
        target=target,
        local=local,
        strict=strict,
    )


def _hub_config(hub, model_id: str) -> dict | None:
    """The base's config.json from the registry (no weights); None when the registry does not have it."""

    def read() -> dict:
        path = retrying(
            lambda: hub.hf_hub_download(model_id, "config.json"),
            hub.endpoint,
            f"reading the config of base {model_id}",
        )
        return json.loads(Path(path).read_text(encoding="utf-8"))

    return if_exists(read, unreadable=(OSError, ValueError))  # any HTTP error is an OSError: unreadable


def _hub_rows(hub, repo: str, revision: str | None) -> int | None:
    """Rows of a published pairs dataset (its parquet shards' metadata), None when it does not exist."""
    import tempfile

    def rows() -> int | None:
        with tempfile.TemporaryDirectory(prefix="deltahub-rows-") as tmp:
            retrying(
                lambda: hub.snapshot_download(
                    repo, repo_type="dataset", revision=revision, local_dir=tmp, allow_patterns=["data/*.parquet"]
                ),
                hub.endpoint,
                f"reading the linked dataset {repo}",
            )
            return count_rows(Path(tmp))

    return if_exists(rows)
