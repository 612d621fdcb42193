"""deltahub.endpoint: environment set before the HF libraries import; on-demand embedded default; overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_PROBE = """
import json, os, sys
from deltahub.endpoint import connect, registry_root
url = connect().url
api = connect().api()
import huggingface_hub.constants as c, datasets.config as d
api.create_repo("me/probe", exist_ok=True)
print(json.dumps({"url": url, "const": c.ENDPOINT, "xet": c.HF_HUB_DISABLE_XET, "parquet_export": d.USE_PARQUET_EXPORT,
                  "counts": os.environ.get("HF_UPDATE_DOWNLOAD_COUNTS"), "api": api.endpoint,
                  "root": str(registry_root()), "db": (registry_root() / "registry.db").exists(),
                  "repos": [m.id for m in api.list_models()]}))
"""


def _probe(env_extra: dict[str, str], home) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DELTAHUB_"))}
    env.update({"DELTAHUB_HOME": str(home), "HF_HOME": str(home / "hf"), **env_extra})
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_default_is_embedded_registry_under_deltahub_home(tmp_path):
    r = _probe({}, tmp_path)
    assert r["url"].startswith("http://127.0.0.1:") and r["const"] == r["url"] == r["api"]
    assert r["xet"] is False  # Xet stays on: the registry speaks it
    assert r["parquet_export"] is False and r["counts"] == "0"
    assert r["root"] == str(tmp_path / "registry") and r["db"]
    assert r["repos"] == ["me/probe"]
    # a second process shares the same root (SQLite WAL): it sees the first one's repo
    r2 = _probe({}, tmp_path)
    assert r2["repos"] == ["me/probe"]


def test_deltahub_endpoint_overrides_the_default(tmp_path):
    from deltahub.server import start_server

    with start_server(tmp_path / "other") as srv:
        r = _probe({"DELTAHUB_ENDPOINT": srv.url}, tmp_path)
        assert r["url"] == srv.url and r["const"] == srv.url
        assert not (tmp_path / "registry").exists()
        assert (tmp_path / "other" / "registry.db").exists()


def test_saved_endpoint_is_used_and_the_environment_beats_it(tmp_path):
    from deltahub.server import start_server

    with start_server(tmp_path / "saved") as saved, start_server(tmp_path / "env") as by_env:
        (tmp_path / "settings.json").write_text(json.dumps({"endpoint": saved.url}))
        r = _probe({}, tmp_path)
        assert r["url"] == r["const"] == saved.url and r["repos"] == ["me/probe"]
        assert not (tmp_path / "registry").exists()  # no embedded registry was started
        r = _probe({"DELTAHUB_ENDPOINT": by_env.url}, tmp_path)
        assert r["url"] == by_env.url
