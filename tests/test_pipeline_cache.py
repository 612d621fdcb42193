"""The stage cache: same inputs + existing output -> skip; changed inputs, missing output or a crash -> run."""

from __future__ import annotations

import pytest

from deltahub.pipeline.cache import StageCache, content_key


def test_skip_rerun_and_resume_after_crash(tmp_path):
    calls: list[str] = []
    out = tmp_path / "a.txt"

    def stage_a():
        calls.append("a")
        out.write_text("a")
        return "ra"

    def crash():
        calls.append("b")
        raise KeyboardInterrupt  # the run is interrupted inside stage b

    cache = StageCache(tmp_path / "work", log=lambda _: None)
    key_a, _ = cache.run("a", {"x": 1}, stage_a, out)
    with pytest.raises(KeyboardInterrupt):
        cache.run("b", {"a": key_a}, crash)

    resumed = StageCache(tmp_path / "work", log=lambda _: None)  # a fresh process reads stages.json
    assert resumed.run("a", {"x": 1}, stage_a, out) == (key_a, "ra")
    resumed.run("b", {"a": key_a}, lambda: calls.append("b2") or "rb")
    assert calls == ["a", "b", "b2"] and resumed.skipped == ["a"] and resumed.ran == ["b"]

    resumed.run("a", {"x": 2}, stage_a, out)  # changed inputs -> runs again
    out.unlink()
    resumed.run("a", {"x": 2}, stage_a, out)  # output gone -> runs again
    assert calls == ["a", "b", "b2", "a", "a"]


def test_content_key_is_order_independent_and_input_sensitive():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
