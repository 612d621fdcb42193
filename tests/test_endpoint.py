"""The endpoint rule: DELTAHUB_ENDPOINT, else `deltahub hub use`, else the embedded registry; one
``home()`` for DELTAHUB_HOME; bad settings are one-line errors."""

from __future__ import annotations

import json

import pytest

from deltahub.cli import main
from deltahub.endpoint import settings
from deltahub.errors import InputError


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DELTAHUB_HOME", str(tmp_path))
    monkeypatch.delenv("DELTAHUB_ENDPOINT", raising=False)
    # an endpoint an earlier test set in this process (connect(endpoint=...)) is not this test's choice
    monkeypatch.setattr("deltahub.endpoint._current", None)
    return tmp_path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_home_is_the_one_place_for_deltahub_home(home, monkeypatch):
    from deltahub.endpoint import registry_root
    from deltahub.home import home as home_fn
    from deltahub.pipeline.cli import _default_work
    from deltahub.share.pull import cache_dir
    from deltahub.toy.world import default_root

    assert home_fn() == home
    assert [registry_root(), cache_dir(), default_root(), _default_work("x"), settings.settings_path()] == [
        home / "registry",
        home / "deltas",
        home / "toy",
        home / "runs" / "x",
        home / "settings.json",
    ]
    monkeypatch.delenv("DELTAHUB_HOME")
    monkeypatch.setenv("HOME", str(home / "user"))
    assert home_fn() == home / "user" / ".cache" / "deltahub"


def test_the_rule_env_then_saved_then_embedded(home, monkeypatch):
    assert settings.choose() == settings.Choice("embedded", "default", "https://huggingface.co")
    settings.save(endpoint="http://10.0.0.5:8765/")
    chosen = settings.choose()
    assert chosen.endpoint == "http://10.0.0.5:8765" and str(home / "settings.json") in chosen.source
    monkeypatch.setenv("DELTAHUB_ENDPOINT", "https://hub.example.org")
    assert settings.choose() == settings.Choice(
        "https://hub.example.org", "DELTAHUB_ENDPOINT", "https://huggingface.co"
    )
    monkeypatch.setenv("DELTAHUB_ENDPOINT", "embedded")
    assert settings.choose().endpoint == "embedded"
    settings.save(upstream=None)
    assert json.loads((home / "settings.json").read_text()) == {"endpoint": "http://10.0.0.5:8765", "upstream": None}
    assert settings.choose().upstream is None


def test_hub_use_saves_and_describes(home, capsys):
    code, out, _ = run_cli(capsys, "hub", "use", "embedded", "--upstream", "http://127.0.0.1:9/")
    assert code == 0 and "upstream http://127.0.0.1:9;" in out and "the embedded registry" in out
    assert json.loads((home / "settings.json").read_text()) == {
        "endpoint": "embedded",
        "upstream": "http://127.0.0.1:9",
    }
    code, out, _ = run_cli(capsys, "hub", "use", "--no-upstream")
    assert code == 0 and "no upstream" in out
    code, out, _ = run_cli(capsys, "hub", "use", "http://team-hub:8765")
    saved = home / "settings.json"
    assert code == 0 and out.strip().endswith(f"http://team-hub:8765 (chosen by the setting saved in {saved})")
    code, out, _ = run_cli(capsys, "hub", "use")
    assert code == 0 and "http://team-hub:8765" in out and "saved to" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (("hub", "use", "ftp://x"), "endpoint 'ftp://x' is not an http(s) URL"),
        (("hub", "use", "embedded", "--upstream", "nope"), "upstream 'nope' is not an http(s) URL"),
        (("hub", "use", "--upstream", "http://a", "--no-upstream"), "contradict"),
        (("hub", "serve", "--upstream", "http://a", "--no-upstream", "--open"), "contradict"),
    ],
)
def test_bad_settings_are_one_line_errors(home, capsys, args, message):
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (home / "settings.json").exists()


def test_a_broken_settings_file_says_which_file_and_the_fix(home):
    (home / "settings.json").write_text('{"endpoint": "embedded", "upstrem": null}')
    with pytest.raises(InputError, match="settings.json is not valid deltahub settings") as err:
        settings.choose()
    assert "deltahub hub use" in err.value.fix


def test_the_gam_yml_written_for_published_deltas(tmp_path):
    import shlex

    import yaml

    from deltahub.share.mergekit_config import write_for_published

    student = tmp_path / "student"
    student.mkdir()
    published = {}
    for name in ("srt", "rev"):
        pulled = tmp_path / f"pulled-{name}"
        pulled.mkdir()
        (pulled / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(student)}))
        published[name] = {"repo": f"demo/{name}-delta", "revision": name * 10, "pulled": str(pulled)}
    line = write_for_published(published, tmp_path / "out" / "gam.yml", {"reference": "auto"})
    cfg = yaml.safe_load((tmp_path / "out" / "gam.yml").read_text())
    assert cfg == {
        "merge_method": "gam",
        "base_model": str(student),
        "dtype": "float32",
        "parameters": {"reference": "auto"},
        "models": [
            {"model": f"{student}+demo/srt-delta@{'srt' * 10}", "parameters": {"weight": 1.0}},
            {"model": f"{student}+demo/rev-delta@{'rev' * 10}", "parameters": {"weight": 1.0}},
        ],
    }
    assert shlex.split(line) == [
        "cd",
        str(tmp_path / "out"),
        "&&",
        "mergekit-yaml",
        "gam.yml",
        "merged-mergekit",
        "--lora-merge-cache",
        "lora-cache",
        "--lora-merge-dtype",
        "float32",
    ]
    # a parameter naming a delta by its recipe name is written as the repo that delta was published to
    write_for_published(published, tmp_path / "named.yml", {"reference": "rev", "scale": 2.0})
    named = yaml.safe_load((tmp_path / "named.yml").read_text())["parameters"]
    assert named == {"reference": "demo/rev-delta", "scale": 2.0}
    assert write_for_published({"x": {"adapter": "/a"}}, tmp_path / "none.yml") is None  # nothing published
    assert not (tmp_path / "none.yml").exists()
