"""Is ``--base M`` the model the adapters were trained on?

``deltahub merge --full --base M`` adds the merged update to M's weights. Shapes alone do not tell
two models apart (any two checkpoints of one architecture agree), so M must be the adapters'
``base_model_name_or_path``: the same name, the same folder, or, when the names differ (a local
copy of a Hub model), the same config fingerprint (architecture and shape fields of
``config.json``) and, where both models' weights are on disk, the same first MiB of weights (two
checkpoints of one architecture share the config; a copy shares the bytes). Anything else stops
the merge unless ``--allow-base-mismatch``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from ..errors import InputError

# config.json fields that tell architectures and sizes apart
FINGERPRINT_FIELDS = (
    "architectures",
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "tie_word_embeddings",
    "max_position_embeddings",
    "rope_theta",
)


def config_fingerprint(config_file: Path) -> dict:
    config = json.loads(Path(config_file).read_text())
    return {k: config.get(k) for k in FINGERPRINT_FIELDS if k in config}


SAMPLE_BYTES = 1 << 20


def weights_sample(folder: Path) -> str | None:
    """A hash of the first safetensors shard's header and first MiB of tensor data, or None."""
    shards = sorted(Path(folder).glob("*.safetensors"))
    if not shards:
        return None
    with open(shards[0], "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return hashlib.sha256(f.read(size) + f.read(SAMPLE_BYTES)).hexdigest()


def _config_of(name: str) -> Path | None:
    """config.json of a model named by a folder or a Hub id already in the local cache (no network)."""
    folder = Path(name)
    if (folder / "config.json").is_file():
        return folder / "config.json"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:
        return None
    return Path(cached) if isinstance(cached, str) else None


def check_base(base: str | Path, base_path: Path, trained_on: str | None, allow_mismatch: bool) -> None:
    """Raise unless ``base`` (resolved to ``base_path``) is the adapters' base model ``trained_on``."""
    if allow_mismatch or trained_on is None:
        return
    if str(base) == trained_on or Path(trained_on).resolve() == base_path.resolve():
        return
    fix = f"pass --base {trained_on}, or --allow-base-mismatch if {base} is that model"
    theirs = _config_of(trained_on)
    if theirs is None or not (base_path / "config.json").is_file():
        raise InputError(
            f"base model {base} is not the adapters' base {trained_on}, and {trained_on}'s config "
            "is not available locally to compare",
            fix,
        )
    mine, want = config_fingerprint(base_path / "config.json"), config_fingerprint(theirs)
    if mine != want:
        diff = ", ".join(
            f"{k} {mine.get(k)!r} vs {want.get(k)!r}"
            for k in sorted(set(mine) | set(want))
            if mine.get(k) != want.get(k)
        )
        raise InputError(f"base model {base} is not the adapters' base {trained_on} (config differs: {diff})", fix)
    theirs_weights, mine_weights = weights_sample(theirs.parent), weights_sample(base_path)
    if theirs_weights is not None and mine_weights is not None and theirs_weights != mine_weights:
        raise InputError(
            f"base model {base} is not the adapters' base {trained_on}: same config, different weights", fix
        )
