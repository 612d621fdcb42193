"""Helpers shared by the backends: locating a model (local folder or registry id) and its revision."""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError


def prepare_model_source(model: str) -> str:
    """Point the Hub client at the registry for a repo id; a local folder passes through."""
    if Path(model).exists():
        if not Path(model).is_dir():
            raise InputError(
                f"model {model} is a file, not a model folder", "pass a folder with config.json and safetensors weights"
            )
        return str(Path(model))
    from ...endpoint import connect

    connect()  # transformers and vLLM read the endpoint from the environment
    return model


def local_revision(model: str) -> str | None:
    """The commit a Hub model resolved to (from the cache path), or None for a local folder."""
    if Path(model).exists():
        return None
    try:
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(model, allow_patterns=["config.json"]))
        return path.name
    except Exception:
        return None


def require_chat_template(tokenizer, model: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(
            f"model {model} has no chat template",
            "use an instruct model with a chat template (tokenizer_config.json / chat_template.jinja)",
        )
