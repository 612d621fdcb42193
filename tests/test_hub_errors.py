"""huggingface_hub's client errors in deltahub's words (deltahub.share.hub_errors), one error type at a time.

Each error is raised by the real client against the embedded registry on loopback (a missing repo, a
missing revision, a missing file, a refused name, a 403 from a registry with accounts); the expected
lines are written here, not taken from deltahub.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from deltahub.errors import InputError
from deltahub.share.hub_errors import client_error, hub_errors, if_exists

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def api(registry):
    api = HfApi(endpoint=registry.url)
    api.create_repo("alice/delta")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="alice/delta")
    return api


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as exc:  # the client's own error, as it raises it
        return exc
    raise AssertionError("the client raised nothing")


def _one_line(call, **how) -> InputError:
    with pytest.raises(InputError) as exc, hub_errors("alice/delta", **how):
        call()
    assert "\n" not in str(exc.value) and exc.value.fix
    return exc.value


def test_a_missing_revision(api, registry):
    assert isinstance(_raised(lambda: api.repo_info("alice/delta", revision="v9")), RevisionNotFoundError)
    err = _one_line(lambda: api.repo_info("alice/delta", revision="v9"), revision="v9", endpoint=registry.url)
    assert str(err).startswith("alice/delta has no revision 'v9' on ")
    assert err.fix == "see its branches and tags with: deltahub show alice/delta"


def test_a_missing_repo(api, registry):
    call = lambda: api.repo_info("nobody/nothing")  # noqa: E731
    assert isinstance(_raised(call), RepositoryNotFoundError)
    with pytest.raises(InputError) as exc, hub_errors("nobody/nothing", endpoint=registry.url):
        call()
    assert str(exc.value).startswith("no repo nobody/nothing on ") and "deltahub list" in exc.value.fix
    with (
        pytest.raises(InputError, match="^no dataset repo nobody/nothing on "),
        hub_errors("nobody/nothing", what="no dataset repo"),
    ):
        call()
    better = InputError("no model repo nobody/nothing: a submission needs one", "publish it yourself")
    with pytest.raises(InputError) as exc, hub_errors("nobody/nothing", missing_repo=better):
        call()
    assert exc.value is better


def test_a_refused_name(api):
    call = lambda: hf_hub_download("alice/bad--name", "config.json")  # noqa: E731
    assert isinstance(_raised(call), HFValidationError)
    with pytest.raises(InputError) as exc, hub_errors("alice/bad--name"):
        call()
    assert str(exc.value).startswith("'alice/bad--name' is not a valid repo id (") and "'--'" in exc.value.fix
    with (
        pytest.raises(InputError, match="^x: alice/bad--name on "),
        hub_errors("alice/bad--name", what="x:", invalid_is_missing=True),
    ):
        call()


def test_a_missing_file_is_none_where_absence_is_an_answer(api):
    call = lambda: hf_hub_download("alice/delta", "nope.json", endpoint=api.endpoint)  # noqa: E731
    assert isinstance(_raised(call), EntryNotFoundError)
    assert if_exists(call) is None
    assert if_exists(lambda: api.repo_info("nobody/nothing")) is None
    assert if_exists(lambda: api.repo_info("alice/delta", revision="v9")) is None
    assert if_exists(lambda: api.repo_info("alice/delta")).id == "alice/delta"
    with pytest.raises(ValueError, match="mine"):  # only the client's "not there" is absence
        if_exists(lambda: (_ for _ in ()).throw(ValueError("mine")))
    assert if_exists(lambda: (_ for _ in ()).throw(ValueError("mine")), unreadable=(ValueError,)) is None


def test_writes_denied_and_missing(tmp_path):
    from deltahub.server import start_server

    with start_server(tmp_path / "registry", open_mode=False, tokens={"tok-alice": "alice"}) as srv:
        alice = HfApi(endpoint=srv.url, token="tok-alice")
        alice.create_repo("alice/delta")
        exc = _raised(lambda: alice.create_repo("bob/delta"))
        assert isinstance(exc, HfHubHTTPError) and exc.response.status_code == 403
        err = client_error(exc, "bob/delta", endpoint=srv.url, write=True)
        assert err.message == f"no write access to bob/delta on {srv.url} (HTTP 403)" and "HF_TOKEN" in err.fix
        assert client_error(exc, "bob/delta", endpoint=srv.url) is None  # a read: not a write-access line
        with pytest.raises(HfHubHTTPError) as passed, hub_errors("bob/delta", endpoint=srv.url):
            alice.create_repo("bob/delta")  # not one a read words: the client's own error, unchanged
        assert passed.value.response.status_code == 403
        gone = _raised(lambda: alice.delete_tag("alice/delta", tag="v9"))
        assert isinstance(gone, HfHubHTTPError) and gone.response.status_code == 404
        err = client_error(gone, "alice/delta", endpoint=srv.url, write=True, missing="list the tags")
        assert err.message == f"alice/delta not found on {srv.url}" and err.fix == "list the tags"
        assert client_error(gone, "alice/delta", endpoint=srv.url, write=True) is None


def test_what_it_does_not_know_passes_through(api):
    with pytest.raises(KeyError), hub_errors("alice/delta"):
        raise KeyError("x")


def test_no_module_catches_the_client_errors_itself():
    """Every except clause on a huggingface_hub error is in share/hub_errors.py (the server raises its own)."""
    import huggingface_hub.errors

    client = {name for name in dir(huggingface_hub.errors) if name.endswith(("Error", "NotFound"))}
    skip = {"src/deltahub/share/hub_errors.py"}
    found = []
    for path in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in skip or rel.startswith("src/deltahub/server/"):
            continue
        tree = ast.parse(path.read_text())
        imported = {  # names bound from huggingface_hub in this file
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("huggingface_hub")
            for a in n.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                names = {n.id for n in ast.walk(node.type) if isinstance(n, ast.Name) and n.id in imported}
                names |= {n.attr for n in ast.walk(node.type) if isinstance(n, ast.Attribute)}
                if names & client:
                    found.append(f"{rel}:{node.lineno}")
    assert not found, found
