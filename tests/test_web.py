"""The registry's web pages, driven by a real headless Chromium against a registry with published deltas.

One registry (token mode: alice, bob, mallory) and one browser for the module. The deltas are published
by the real ``deltahub publish`` through huggingface_hub; mallory's card is uploaded raw with every
trick a card can carry. HTTP-level checks (routes, headers, bad input, CSRF) use plain http.client.
Screenshots of each page go to ``<pytest tmp>/screenshots`` and to ``$DELTAHUB_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-mallory": "mallory"}
PAIRS = 6
DELTAS = ("alice/delta-a", "alice/delta-b", "alice/delta-c")
GAINS = (0.031, 0.052, -0.004)
XSS_CARD = """---
license: mit
tags: [evil]
---
# Totally safe card <script>document.title = 'pwned-script'; window.__xss = 'script'</script>

<img src="x" onerror="window.__xss = 'onerror'; document.title = 'pwned-onerror'">
<a href="javascript:window.__xss='a-tag'">raw link</a> <iframe src="javascript:window.__xss='iframe'"></iframe>

[markdown link](javascript:window.__xss='md-link')
[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
<javascript:window.__xss='autolink'> [vb](vbscript:msgbox) [ok link](https://example.org/ok) [ftp](ftp://example.org/x)

![data image](data:image/png;base64,iVBORw0KGgo=) ![remote image](https://example.org/tracker.png)
![escape](../../../etc/passwd) ![plot](plot.png)

<svg onload="window.__xss='svg'"></svg>
"""
BIN = Path(sys.executable).parent


# -- the world: a registry with published deltas --------------------------------------------------
def _png(path: Path) -> Path:
    """deltahub's own training-curves plot (drawn once, copied: matplotlib takes ~0.5 s a figure)."""
    from deltahub.train.plots import plot_training_curves

    drawn = Path(os.environ["DELTAHUB_HOME"]) / "web-test-curves.png"
    if drawn.is_file():
        shutil.copyfile(drawn, path)
        return path
    history = [
        {
            "step": s,
            "loss": 0.69 - 0.05 * s,
            "rewards/margins": 0.1 * s,
            "rewards/accuracies": min(1, 0.5 + 0.1 * s),
            "logps/chosen": -40 + s,
            "logps/rejected": -40 - s,
            "rewards/chosen": 0.05 * s,
            "rewards/rejected": -0.05 * s,
        }
        for s in range(1, 8)
    ]
    plot_training_curves(history, drawn, title="toy DPO")
    shutil.copyfile(drawn, path)
    return path


def _adapter(tiny_model, root: Path, name: str, seed: int, gain: float) -> Path:
    from deltahub.share.cards import write_card
    from deltahub.tiny import build_random_adapter

    first = root / "_template-adapter"
    if not first.is_dir():  # PEFT builds one adapter (~1 s); the others get new random factors of the same shapes
        build_random_adapter(tiny_model, first, r=4, alpha=8, seed=0, target_modules=["q_proj", "v_proj"])
    out = root / name
    shutil.copytree(first, out)
    gen = torch.Generator().manual_seed(seed)
    weights = out / "adapter_model.safetensors"
    save_file({k: torch.randn(v.shape, generator=gen) * 0.05 for k, v in load_file(weights).items()}, weights)
    block = {
        "schema_version": 1,
        "kind": "adapter",
        "chosen": {"model": f"toy/Qwen3-big-{seed}"},
        "rejected": {"model": "toy/Qwen3-small"},
        "student": {"model": str(tiny_model)},
        "pairs": PAIRS * seed,
        "training": {"objective": "dpo", "beta": 0.1, "epochs": 1},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "gain": {"metric": "accuracy", "value": gain, "baseline": 0.5},
    }
    (out / "deltahub.json").write_text(json.dumps(block))
    _png(out / "training_curves.png")
    write_card(out)
    return out


def _dataset(root: Path) -> Path:
    import datasets

    from deltahub.share.cards import write_card

    out = root / "pairs"
    rows = [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "chosen": [{"role": "assistant", "content": f"{i} + {i} = {2 * i}."}],
            "rejected": [{"role": "assistant", "content": f"It is {2 * i + 1}, I think."}],
        }
        for i in range(PAIRS)
    ]
    (out / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(out / "data" / "train-00000.parquet"))
    block = {
        "schema_version": 1,
        "kind": "dataset",
        "chosen": {"model": "toy/Qwen3-big"},
        "rejected": {"model": "toy/Qwen3-small"},
        "prompts": {"dataset": "toy/prompts", "split": "train"},
        "pairs": PAIRS,
        "filters": {"empty": 2, "identical": 1},
    }
    (out / "deltahub.json").write_text(json.dumps(block))
    _png(out / "training_curves.png")
    write_card(out)
    return out


TINY_BASE = "alice/tiny-base"


def _publish(*args: str) -> None:
    from deltahub.cli import cli

    r = CliRunner().invoke(cli, ["publish", *args])
    assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def world(tiny_model, tmp_path_factory):
    from deltahub.endpoint import connect
    from deltahub.server import start_server

    root = tmp_path_factory.mktemp("web")
    saved = {k: os.environ.get(k) for k in ("HF_TOKEN", "HF_ENDPOINT")}
    server = start_server(root / "registry", open_mode=False, tokens=TOKENS)
    try:
        connect(endpoint=server.url, token="tok-alice")
        folders = {}
        from deltahub.endpoint import connect

        # the adapters' local base is on the registry under this id, which publish names (share/bases.py)
        connect().api().create_repo(TINY_BASE)
        connect().api().upload_folder(repo_id=TINY_BASE, folder_path=str(tiny_model))
        data = _dataset(root / "src")
        _publish(str(data), "--repo", "alice/pairs")
        for i, (repo, gain) in enumerate(zip(DELTAS, GAINS, strict=True)):
            folders[repo] = _adapter(tiny_model, root / "src", repo.split("/")[1], i + 1, gain)
            tag = ["--tag", "v1"] if i == 0 else []
            # publish validates: only delta-a's pair count (PAIRS) matches the linked dataset's rows
            link = ["--dataset", "alice/pairs"] if i == 0 else []
            _publish(str(folders[repo]), "--repo", repo, "--base", TINY_BASE, *link, *tag)
        # a second version of delta-a: its card changes (the gain), so the history has a card diff
        block = json.loads((folders["alice/delta-a"] / "deltahub.json").read_text())
        block["gain"]["value"] = 0.035
        (folders["alice/delta-a"] / "deltahub.json").write_text(json.dumps(block))
        _publish(
            str(folders["alice/delta-a"]), "--repo", "alice/delta-a", "--base", TINY_BASE, "--dataset", "alice/pairs"
        )
        secret = _adapter(tiny_model, root / "src", "secret-delta", 9, 0.2)
        _publish(str(secret), "--repo", "alice/secret-delta", "--base", TINY_BASE, "--private")

        connect(endpoint=server.url, token="tok-mallory")
        from deltahub.endpoint import connect

        api = connect().api()
        api.create_repo("mallory/evil")
        api.upload_file(path_or_fileobj=XSS_CARD.encode(), path_in_repo="README.md", repo_id="mallory/evil")
        api.upload_file(path_or_fileobj=_png(root / "plot.png"), path_in_repo="plot.png", repo_id="mallory/evil")
        api.upload_file(
            path_or_fileobj=b"<script>window.__xss='raw'</script>", path_in_repo="evil.html", repo_id="mallory/evil"
        )
        connect(endpoint=server.url, token="tok-alice")
        yield {"url": server.url, "root": root, "folders": folders, "tiny": TINY_BASE, "tiny_dir": str(tiny_model)}
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- plain HTTP ---------------------------------------------------------------------------------------
def _http(world, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = urllib.parse.urlsplit(world["url"]).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read(), r.headers.get_all("set-cookie") or []
    finally:
        conn.close()


def get(world, path: str, cookie: str | None = None):
    return _http(world, "GET", path, headers={"Cookie": cookie} if cookie else None)


def signed_in_cookie(world, token: str) -> str:
    """Sign in through the form (CSRF cookie first), return the Cookie header of the session."""
    status, _, _, cookies = get(world, "/login")
    csrf = re.search(r"deltahub_csrf=([^;]+)", " ".join(cookies)).group(1)
    body = urllib.parse.urlencode({"csrf": csrf, "token": token, "next": "/"}).encode()
    status, headers, _, cookies = _http(
        world,
        "POST",
        "/login",
        body,
        {"Cookie": f"deltahub_csrf={csrf}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303 and headers["location"] == "/"
    session = re.search(r"deltahub_token=([^;]+)", " ".join(cookies)).group(1)
    return f"deltahub_csrf={csrf}; deltahub_token={session}"


def test_api_routes_still_win(world):
    status, headers, body, _ = get(world, "/api/models?search=delta")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert {m["id"] for m in json.loads(body)} == set(DELTAS)
    status, headers, body, _ = get(world, "/alice/delta-a/resolve/main/README.md")
    assert status == 200 and headers["content-type"] == "application/octet-stream" and body.startswith(b"---\n")
    status, headers, _, _ = get(world, "/api/models/alice/delta-a")
    assert status == 200 and headers["content-type"].startswith("application/json")
    status, headers, body, _ = get(world, "/datasets/alice/pairs/resolve/main/data/train-00000.parquet")
    assert status == 200 and body[:4] == b"PAR1"
    status, headers, _, _ = get(world, "/alice/secret-delta/resolve/main/README.md")  # API: header token only
    assert status == 404 and headers["content-type"].startswith("application/json")
    status, headers, body, _ = get(world, "/alice/delta-a")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"


def test_pages_and_deltahub_list_agree(world):
    """The home page's filters select what ``deltahub list`` selects (same rows, same order)."""
    from deltahub.share.search import list_deltas

    cookie = signed_in_cookie(world, "tok-alice")

    def page_rows(query: str) -> list[str]:
        status, _, body, _ = get(world, "/?" + query, cookie)
        assert status == 200
        return re.findall(r'<tr class="repo-row" data-repo="([^"]+)"', body.decode())

    base = world["tiny"]
    for args, query in [
        ({"base": base}, {"base": base, "kind": "adapter"}),
        ({"base": base, "sort": "gain"}, {"base": base, "kind": "adapter", "sort": "gain"}),
        ({"family": "Qwen3", "min_pairs": 2 * PAIRS}, {"family": "Qwen3", "min_pairs": 2 * PAIRS, "kind": "adapter"}),
        ({"kind": "dataset"}, {"kind": "dataset"}),
    ]:
        want = [r["repo_id"] for r in list_deltas(**args)]
        assert page_rows(urllib.parse.urlencode(query)) == want, args
    assert page_rows("sort=gain&kind=adapter")[:3] == ["alice/secret-delta", "alice/delta-b", "alice/delta-a"]
    assert page_rows("q=" + urllib.parse.quote("Qwen3-big-2")) == ["alice/delta-b"]  # card text, not the name


def test_bad_input_is_a_4xx_page_never_a_5xx(world):
    cookie = signed_in_cookie(world, "tok-alice")
    bad = [
        "/alice/delta-a/raw/main/../../registry.db",
        "/alice/delta-a/raw/main/%2e%2e/%2e%2e/registry.db",
        "/alice/delta-a/raw/main/a%0d%0aSet-Cookie:x",
        "/alice/delta-a/raw/main/data",
        "/alice/delta-a/raw/..x/a",
        "/alice/delta-a/raw/main/",
        "/a..b/x",
        "/alice/de--lta",
        "/alice/delta-a?rev=..",
        "/alice/delta-a?rev=@{1}",
        "/alice/delta-a/tree/a..b",
        "/alice/delta-a/tree/nope",
        "/alice/delta-a/commit/zzzz",
        "/alice/delta-a/commits/" + "x" * 300,
        "/alice/delta-a/compare?from=nope",
        "/alice/delta-a/compare?to=..",
        "/?min_pairs=abc",
        "/?min_pairs=%C2%B2",
        "/?sort=bogus",
        "/?kind=spaces",
        "/?page=0",
        "/?q=" + "x" * 1000,
        "/compose?base=x&d=..%2F..%2Fetc",
        "/compose?method=evil&base=x",
        f"/compose?base={world['tiny']}&d=alice/delta-a&w:alice/delta-a=nan",
        f"/compose?base={world['tiny']}&d=alice/delta-a&method=gam&p:reference=5",
        f"/compose?base={world['tiny']}&d=alice/delta-a&method=gam&p:scale=big",
        f"/compose?base={world['tiny']}&d=alice/secret-delta&d=alice/secret-delta" + "&d=x" * 40,
        "/datasets/alice/nothing",
        "/datasets/alice/pairs/raw/main/nothing.parquet",
        "/mallory/evil/tree/" + "%00",
    ]
    for path in bad:
        for c in (None, cookie):
            status, headers, body, _ = get(world, path, c)
            assert 400 <= status < 500, (path, status, body[:300])
            if headers.get("content-type", "").startswith("text/html"):
                assert b"Traceback" not in body
    status, _, body, _ = get(world, f"/compose?base={world['tiny']}&d=alice/delta-a&method=gam&p:reference=5", cookie)
    assert status == 400 and b"reference 5 is not one of the 1 ticked deltas" in body
    for method in ("POST", "PUT", "DELETE"):  # other methods fall through to the 404 the API answered before
        assert _http(world, method, "/alice/delta-a")[0] == 404
        assert _http(world, method, "/lfs/verify")[0] == 404
    status, _, _, _ = _http(world, "HEAD", "/alice/delta-a")
    assert status == 200


def test_private_repos_follow_the_api_rules(world):
    assert b"secret-delta" not in get(world, "/")[2]
    for path in (
        "/alice/secret-delta",
        "/alice/secret-delta/tree/main",
        "/alice/secret-delta/raw/main/README.md",
        "/alice/secret-delta/commits/main",
        "/alice/secret-delta/compare",
    ):
        for cookie in (None, signed_in_cookie(world, "tok-bob"), "deltahub_token=tok-nobody"):
            status, _, body, _ = get(world, path, cookie)
            assert status == 404 and b"secret" not in body.replace(b"alice/secret-delta", b""), (path, cookie)
    assert b"secret-delta" not in get(world, f"/compose?base={world['tiny']}", signed_in_cookie(world, "tok-bob"))[2]
    alice = signed_in_cookie(world, "tok-alice")
    assert get(world, "/alice/secret-delta", alice)[0] == 200
    status, headers, body, _ = get(world, "/alice/secret-delta/raw/main/training_curves.png", alice)
    assert status == 200 and headers["content-type"] == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"


def test_listing_cache_follows_visibility_and_new_commits(world):
    """Rows are cached per repo stamp: making a repo private hides it at once, a new card shows at once."""
    from deltahub.endpoint import connect

    def listed() -> set[str]:
        return set(re.findall(r'data-repo="([^"]+)"', get(world, "/")[2].decode()))

    assert "alice/delta-c" in listed()
    api = connect().api()
    api.update_repo_settings("alice/delta-c", private=True)
    try:
        assert "alice/delta-c" not in listed()
        assert get(world, "/?q=Qwen3-big-3")[2].count(b"data-repo=") == 0
    finally:
        api.update_repo_settings("alice/delta-c", private=False)
    assert "alice/delta-c" in listed()
    api.create_repo("alice/scratch-card")
    api.upload_file(
        path_or_fileobj=b"---\nlicense: mit\n---\n# fresh words: zebra quokka\n",
        path_in_repo="README.md",
        repo_id="alice/scratch-card",
    )
    assert re.findall(r'data-repo="([^"]+)"', get(world, "/?q=zebra+quokka")[2].decode()) == ["alice/scratch-card"]
    api.delete_repo("alice/scratch-card")
    assert "alice/scratch-card" not in listed()


def test_card_text_cache_is_bounded(world):
    from deltahub.server.storage import Store
    from deltahub.server.web.catalog import CardText

    store = Store(world["root"] / "registry")
    try:
        cards = CardText(store, max_chars=3000)
        repos = [r for t in ("model", "dataset") for r in store.list_repos(t, [], None, None)]
        for _ in range(2):
            for r in repos:
                text = cards.text(r)
                plain = r.repo_id in ("mallory/evil", TINY_BASE)  # repos without a deltahub card
                assert text.startswith(r.repo_id) and (plain or "deltahub" in text)
                assert cards._chars <= 3000 and cards._chars == sum(len(t) for _, t in cards._text.values())
    finally:
        store.close()


def test_sign_in_needs_the_csrf_token_and_sets_strict_cookies(world):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = urllib.parse.urlencode({"token": "tok-alice", "next": "/"}).encode()
    assert _http(world, "POST", "/login", body, form)[0] == 403  # no CSRF cookie nor field
    csrf = "A" * 43
    forged = urllib.parse.urlencode({"token": "tok-alice", "csrf": "B" * 43}).encode()
    assert _http(world, "POST", "/login", forged, {**form, "Cookie": f"deltahub_csrf={csrf}"})[0] == 403
    ok = urllib.parse.urlencode({"token": "tok-alice", "csrf": csrf, "next": "//evil.example/x"}).encode()
    status, headers, _, cookies = _http(world, "POST", "/login", ok, {**form, "Cookie": f"deltahub_csrf={csrf}"})
    assert status == 303 and headers["location"] == "/"  # no open redirect
    token_cookie = next(c for c in cookies if c.startswith("deltahub_token="))
    assert "HttpOnly" in token_cookie and "SameSite=strict" in token_cookie and "Secure" not in token_cookie
    wrong = urllib.parse.urlencode({"token": "tok-wrong", "csrf": csrf}).encode()
    assert _http(world, "POST", "/login", wrong, {**form, "Cookie": f"deltahub_csrf={csrf}"})[0] == 401
    assert _http(world, "POST", "/logout", b"csrf=" + b"C" * 43, {**form, "Cookie": f"deltahub_csrf={csrf}"})[0] == 403


def test_raw_files_never_render_as_html(world):
    status, headers, body, _ = get(world, "/mallory/evil/raw/main/evil.html")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith("attachment")
    assert "sandbox" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    status, headers, _, _ = get(world, "/mallory/evil/raw/main/README.md")
    assert status == 200 and headers["content-type"].startswith("text/plain")


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_card_policy_drops_everything_active():
    from deltahub.server.web.cardhtml import RepoLinks, render_card

    html, cut = render_card(XSS_CARD, RepoLinks("/mallory/evil", "0" * 40))
    parser = _Tags()
    parser.feed(html)
    assert not cut
    assert {t for t, _ in parser.tags} <= {"h1", "p", "a", "img", "span", "br"}
    for tag, attrs in parser.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for key in ("href", "src"):
            if key in attrs:
                assert attrs[key].startswith(("/mallory/evil/raw/" + "0" * 40 + "/", "https://example.org/ok")), attrs
    srcs = [a["src"] for t, a in parser.tags if t == "img"]
    assert srcs == ["/mallory/evil/raw/" + "0" * 40 + "/plot.png"]  # data:, remote and ../ images dropped
    assert "[image not shown: remote image]" in html and "javascript:" not in html.replace("javascript:window", "")
    assert '<span class="dropped-link" title="link removed by the card policy">ftp</span>' in html


# -- the browser --------------------------------------------------------------------------------------
def _browser_binaries() -> tuple[str, str] | None:
    chrome = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    return (chrome, driver) if chrome and driver else None


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[test]'")
    found = _browser_binaries()
    if found is None:
        pytest.skip("no headless browser: apt-get install chromium chromium-driver (make install does it as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1360,1000",
        "--disable-extensions",
        "--no-first-run",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def _each_browser_test_starts_signed_out(request):
    """The browser is shared by the module's tests: a test that fails while signed in must not leave the
    next test (which expects a signed-out visitor) looking at private pages."""
    if "browser" in request.fixturenames:
        request.getfixturevalue("browser").delete_all_cookies()
    yield


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> list[Path]:
    dirs = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("DELTAHUB_SCREENSHOTS"):
        dirs.append(Path(os.environ["DELTAHUB_SCREENSHOTS"]))
        dirs[-1].mkdir(parents=True, exist_ok=True)
    return dirs


def _shot(browser, shots: list[Path], name: str) -> None:
    """A screenshot of the whole page height (capped), as a 128-colour PNG (small enough to commit)."""
    from PIL import Image

    height = min(browser.execute_script("return document.documentElement.scrollHeight"), 2400)
    chrome = browser.execute_script("return window.outerHeight - window.innerHeight")
    browser.set_window_size(1360, max(height, 700) + chrome)
    browser.execute_script("window.scrollTo(0, 0)")
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB").quantize(128)
    for d in shots:
        image.save(d / f"{name}.png", optimize=True)
    browser.set_window_size(1360, 1000)


def _open(browser, world, path: str) -> None:
    browser.get(world["url"] + path)


def _loaded_width(browser, img) -> int:
    """The image's natural width once the browser has finished loading it (0: it failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_script("arguments[0].scrollIntoView()", img)
    WebDriverWait(browser, 20).until(lambda d: d.execute_script("return arguments[0].complete", img))
    return browser.execute_script("return arguments[0].naturalWidth", img)


def _follow(browser, element) -> None:
    """Click an element that loads a new page and wait until the new page has loaded (a click alone may
    return before the navigation, and the next lookup would read the old page)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(browser, 60)
    wait.until(lambda _: _is_gone(old))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def _is_gone(element) -> bool:
    """Whether the page that held ``element`` has been replaced. Besides "stale element", Chromium may
    answer a query on the old page's node mid-navigation with "Node with given id does not belong to the
    document" (a WebDriverException; seen once in a full run): that, too, means the old page is gone."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()
    except WebDriverException:  # StaleElementReferenceException is one
        return True
    return False


def _sign_in(browser, world, token: str) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, world, "/login?next=/")
    browser.find_element(By.ID, "token").send_keys(token)
    _follow(browser, browser.find_element(By.ID, "login-submit"))


def _sign_out(browser) -> None:
    from selenium.webdriver.common.by import By

    _follow(browser, browser.find_element(By.ID, "sign-out"))


def test_home_lists_the_published_deltas_by_base(world, browser, shots):
    from selenium.webdriver.common.by import By

    _open(browser, world, "/")
    rows = [r.get_attribute("data-repo") for r in browser.find_elements(By.CSS_SELECTOR, "tr.repo-row")]
    assert set(rows) == {*DELTAS, "alice/pairs", "mallory/evil", TINY_BASE}
    group = browser.find_element(By.CSS_SELECTOR, f"section.group[data-group='{world['tiny']}']")
    listed = [r.get_attribute("data-repo") for r in group.find_elements(By.CSS_SELECTOR, "tr.repo-row")]
    assert listed == ["alice/delta-a", "alice/delta-c", "alice/delta-b"]  # newest first: delta-a was republished
    text = group.text
    assert "+0.035 accuracy" in text and "+0.052 accuracy" in text and "dpo" in text and "apache-2.0" in text
    _shot(browser, shots, "home")


def test_repo_page_renders_the_card_with_its_image(world, browser, shots):
    from selenium.webdriver.common.by import By

    _open(browser, world, "/alice/delta-a")
    card = browser.find_element(By.ID, "card")
    assert card.find_element(By.TAG_NAME, "h1").text.startswith("delta-a: a preference delta")
    img = card.find_element(By.CSS_SELECTOR, "img[alt='training_curves.png']")
    assert _loaded_width(browser, img) == 1000
    schema = browser.find_element(By.ID, "schema").text
    assert "pairs 6" in schema and "objective dpo" in schema and "alice/pairs" in schema
    sha = browser.find_element(By.CSS_SELECTOR, ".rev code[title]").get_attribute("title")
    assert browser.find_element(By.ID, "snip-pull").text == f"deltahub pull alice/delta-a@{sha}"
    assert (
        f'PeftModel.from_pretrained(base, "alice/delta-a", revision="{sha}")'
        in browser.find_element(By.ID, "snip-peft").text
    )
    _shot(browser, shots, "repo")

    _follow(browser, browser.find_element(By.ID, "tab-files"))
    files = {r.get_attribute("data-path"): r.text for r in browser.find_elements(By.CSS_SELECTOR, "tr.file-row")}
    weights = world["folders"]["alice/delta-a"] / "adapter_model.safetensors"
    import hashlib

    assert "LFS" in files["adapter_model.safetensors"]
    assert "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest() in files["adapter_model.safetensors"]
    _shot(browser, shots, "files")

    _follow(browser, browser.find_element(By.ID, "tab-commits"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#log li")) == 3  # initial, publish, republish
    _follow(browser, browser.find_element(By.CSS_SELECTOR, "#compare-form button"))
    diff = browser.find_element(By.ID, "card-diff")
    removed = [e.text for e in diff.find_elements(By.CSS_SELECTOR, ".del")]
    added = [e.text for e in diff.find_elements(By.CSS_SELECTOR, ".add")]
    assert any("0.031" in line for line in removed) and any("0.035" in line for line in added)
    _shot(browser, shots, "card-diff")


def test_dataset_page_previews_pairs(world, browser, shots):
    from selenium.webdriver.common.by import By

    _open(browser, world, "/datasets/alice/pairs")
    rows = browser.find_elements(By.CSS_SELECTOR, "#preview-rows tr.pair-row")
    assert len(rows) == PAIRS
    for i, row in enumerate(rows):
        prompt, chosen, rejected = (
            row.find_element(By.CSS_SELECTOR, f"td.{c} .content").text for c in ("prompt", "chosen", "rejected")
        )
        want = (f"What is {i} + {i}?", f"{i} + {i} = {2 * i}.", f"It is {2 * i + 1}, I think.")
        assert (prompt, chosen, rejected) == want
    assert browser.find_element(By.ID, "pair-count").text == str(PAIRS)
    assert "identical 1" in browser.find_element(By.ID, "filters").text
    _shot(browser, shots, "dataset")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def test_compose_writes_a_config_mergekit_runs(world, browser, shots, tmp_path):
    """Tick two deltas, set weights and GAM parameters; the page's gam.yml runs in the real mergekit-yaml and
    its deltahub command gives the same model, both equal to base + GAM of the factors (deltahub.merge)."""
    from selenium.webdriver.common.by import By

    from deltahub.merge.adapters import load_adapter
    from deltahub.merge.methods import merge_module
    from deltahub.server.web.compose import COMPOSE_METHODS
    from deltahub_mergekit.method import PLUGIN_METHODS

    assert COMPOSE_METHODS == PLUGIN_METHODS
    _open(browser, world, "/compose")
    _follow(browser, browser.find_element(By.CSS_SELECTOR, "#bases a"))
    for repo, weight in (("alice/delta-b", "1.0"), ("alice/delta-c", "0.5")):
        browser.find_element(By.CSS_SELECTOR, f"input[name='d'][value='{repo}']").click()
        box = browser.find_element(By.CSS_SELECTOR, f"input[name='w:{repo}']")
        box.clear()
        box.send_keys(weight)
    scale = browser.find_element(By.ID, "p-scale")
    scale.clear()
    scale.send_keys("0.8")
    reference = browser.find_element(By.ID, "p-reference")
    reference.clear()
    reference.send_keys("1")
    _follow(browser, browser.find_element(By.ID, "compose-submit"))
    config_text = browser.find_element(By.ID, "gam-yml").text
    _shot(browser, shots, "compose")
    config = yaml.safe_load(config_text)
    assert config["parameters"] == {"reference": 1, "reorthonormalize": False, "scale": 0.8}
    shas = [m["model"].rsplit("@", 1)[1] for m in config["models"]]
    assert [m["model"] for m in config["models"]] == [
        f"{world['tiny']}+{r}@{s}" for r, s in zip(("alice/delta-b", "alice/delta-c"), shas, strict=True)
    ]

    (tmp_path / "gam.yml").write_text(config_text)
    env = {**os.environ, "HF_ENDPOINT": world["url"], "DELTAHUB_ENDPOINT": world["url"], "HF_TOKEN": "tok-alice"}
    env.pop("HF_HUB_OFFLINE", None)
    command = shlex.split(browser.find_element(By.ID, "cmd-mergekit").text)
    assert command[0] == "mergekit-yaml"
    r = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]

    from deltahub.cli import cli

    line = shlex.split(browser.find_element(By.ID, "cmd-deltahub").text)
    assert line[:2] == ["deltahub", "merge"]
    result = CliRunner().invoke(cli, [*line[1:-2], "--out", str(tmp_path / "merged-deltahub"), "--quiet"])
    assert result.exit_code == 0, result.output

    got, other = _weights(tmp_path / "merged-mergekit"), _weights(tmp_path / "merged-deltahub")
    base = _weights(Path(world["tiny_dir"]))
    adapters = [load_adapter(world["folders"][r]) for r in ("alice/delta-b", "alice/delta-c")]
    for module in adapters[0].module_names:
        merged = merge_module("gam", [a.modules[module] for a in adapters], [1.0, 0.5], reference=1, scale=0.8)
        want = base[module + ".weight"].double() + merged.dense(torch.float64)
        for name, out in (("mergekit", got), ("deltahub", other)):
            err = (out[module + ".weight"].double() - want).norm() / want.norm()
            assert err < 1e-5, (name, module, float(err))
        assert not torch.equal(got[module + ".weight"], base[module + ".weight"])


def test_private_repo_needs_its_owner_signed_in(world, browser, shots):
    from selenium.webdriver.common.by import By

    _open(browser, world, "/alice/secret-delta")
    assert "Repository not found" in browser.find_element(By.TAG_NAME, "h1").text
    _shot(browser, shots, "private-signed-out")
    _sign_in(browser, world, "tok-bob")
    assert browser.find_element(By.ID, "signed-in").text == "bob"
    assert "secret-delta" not in browser.page_source
    _open(browser, world, "/alice/secret-delta")
    assert "Repository not found" in browser.find_element(By.TAG_NAME, "h1").text
    _sign_out(browser)
    _sign_in(browser, world, "tok-alice")
    cookie = browser.get_cookie("deltahub_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert browser.execute_script("return document.cookie").find("deltahub_token") < 0
    assert browser.find_elements(By.CSS_SELECTOR, "tr.repo-row[data-repo='alice/secret-delta']")
    _shot(browser, shots, "home-signed-in")
    _open(browser, world, "/alice/secret-delta")
    img = browser.find_element(By.CSS_SELECTOR, "#card img[alt='training_curves.png']")
    assert _loaded_width(browser, img) == 1000
    _shot(browser, shots, "private-signed-in")
    _sign_out(browser)
    _open(browser, world, "/alice/secret-delta")
    assert "Repository not found" in browser.find_element(By.TAG_NAME, "h1").text


def test_card_scripts_never_run(world, browser, shots):
    from selenium.webdriver.common.by import By

    _open(browser, world, "/mallory/evil")
    title = browser.title
    for link in browser.find_elements(By.CSS_SELECTOR, "#card a, #card .dropped-link"):
        if link.get_attribute("href") and not link.get_attribute("href").startswith(world["url"]):
            continue  # the one external link: not followed (no network)
        link.click()
        if browser.current_url != world["url"] + "/mallory/evil":
            browser.back()
    assert browser.execute_script("return window.__xss === undefined")
    assert title == "mallory/evil · deltahub" and "pwned" not in browser.title
    card = browser.find_element(By.ID, "card")
    assert not card.find_elements(By.CSS_SELECTOR, "script, iframe, svg, [onerror], [onload], a[href^='javascript']")
    assert "<script>document.title" in card.text  # shown as text, not run
    plot = card.find_element(By.CSS_SELECTOR, "img[alt='plot']")
    assert _loaded_width(browser, plot) == 1000
    _shot(browser, shots, "xss-card")


# -- pull requests, discussions, collections (issue #17's API, issue #19's pages) ---------------------------
XSS_COMMENT = """Please **review** the notes.

<script>window.__xss = 'comment-script'; document.title = 'pwned-comment'</script>
<img src="x" onerror="window.__xss = 'comment-onerror'"> [click](javascript:window.__xss='comment-link')
![remote](https://example.org/t.png) [notes](NOTES.md)
"""


@pytest.fixture(scope="module")
def community(world):
    """Pull requests, discussions and collections made by the real huggingface_hub client: bob's open pull request
    on delta-a (mallory comments with every trick a card can carry) and a closed discussion there, a merged pull
    request on delta-c, alice's own discussion on her private repo; alice's public collection (with her private repo in
    it) and her private one."""
    from huggingface_hub import CommitOperationAdd, HfApi

    alice, bob, mallory = (HfApi(endpoint=world["url"], token=t) for t in ("tok-alice", "tok-bob", "tok-mallory"))
    pr = bob.create_commit(
        "alice/delta-a",
        [CommitOperationAdd("NOTES.md", b"# Notes\nline one\nline <two>\n")],
        commit_message="Add review notes",
        commit_description=XSS_COMMENT,
        create_pr=True,
    )
    mallory.comment_discussion("alice/delta-a", pr.pr_num, XSS_COMMENT)
    spam = mallory.comment_discussion("alice/delta-a", pr.pr_num, "Buy cheap tokens")
    with pytest.warns(UserWarning, match="irreversible"):
        alice.hide_discussion_comment("alice/delta-a", pr.pr_num, spam.id)
    alice.comment_discussion("alice/delta-a", pr.pr_num, "Thanks, *looks good*.")
    question = bob.create_discussion("alice/delta-a", title="Which beta?", description="Was beta 0.1 tuned?")
    alice.change_discussion_status("alice/delta-a", question.num, "closed", comment="Yes, on held-out pairs.")
    merged = bob.create_commit(
        "alice/delta-c",
        [CommitOperationAdd("NOTES.md", b"merged notes\n")],
        commit_message="Notes for delta-c",
        create_pr=True,
    )
    alice.merge_pull_request("alice/delta-c", merged.pr_num)
    secret = alice.create_discussion("alice/secret-delta", title="Secret plans", description="not for bob")
    best = alice.create_collection("Best deltas", description="Deltas that compose well")
    for repo_id, kind, note in [
        ("alice/delta-a", "model", "the first"),
        ("alice/delta-b", "model", None),
        ("alice/pairs", "dataset", "their pairs"),
        ("alice/secret-delta", "model", None),
    ]:
        alice.add_collection_item(best.slug, repo_id, kind, note=note)
    hidden = alice.create_collection("Hidden picks", private=True)
    alice.add_collection_item(hidden.slug, "alice/delta-c", "model", note="keep quiet")
    return {
        "pr": pr.pr_num,
        "question": question.num,
        "merged": merged.pr_num,
        "secret": secret.num,
        "best": best.slug,
        "hidden": hidden.slug,
    }


def test_discussions_and_collections_follow_the_api_privacy_rules(world, community):
    """A private repo's discussions and a private collection are 404 signed out and for another user, like a
    missing one; their owner sees them; a public collection never shows a private repo to others."""
    alice, bob = signed_in_cookie(world, "tok-alice"), signed_in_cookie(world, "tok-bob")
    hidden, best = community["hidden"], community["best"]
    for path in (
        "/alice/secret-delta/discussions",
        f"/alice/secret-delta/discussions/{community['secret']}",
        f"/collections/{hidden}",
    ):
        for cookie in (None, bob, "deltahub_token=tok-nobody"):
            status, _, body, _ = get(world, path, cookie)
            assert status == 404 and b"Secret plans" not in body and b"Hidden picks" not in body, (path, cookie)
        status, _, body, _ = get(world, path, alice)
        assert status == 200, path
    assert b"Secret plans" in get(world, f"/alice/secret-delta/discussions/{community['secret']}", alice)[2]
    assert b"keep quiet" in get(world, f"/collections/{hidden}", alice)[2]
    for cookie in (None, bob):
        listing = get(world, "/collections", cookie)[2]
        assert best.encode() in listing and b"Hidden picks" not in listing and b"secret-delta" not in listing
        page = get(world, f"/collections/{best}", cookie)[2].decode()
        assert re.findall(r'data-item="([^"]+)"', page) == ["alice/delta-a", "alice/delta-b", "alice/pairs"]
        assert "Hidden picks" not in get(world, "/alice/delta-c", cookie)[2].decode()
    listing = get(world, "/collections", alice)[2]
    assert b"Hidden picks" in listing and b"Best deltas" in listing
    page = get(world, f"/collections/{best}", alice)[2].decode()
    assert re.findall(r'data-item="([^"]+)"', page) == [
        "alice/delta-a",
        "alice/delta-b",
        "alice/pairs",
        "alice/secret-delta",
    ]
    holding = get(world, "/alice/delta-c", alice)[2].decode()
    assert f'href="/collections/{hidden}">Hidden picks</a>' in holding
    assert f'href="/collections/{best}">Best deltas</a>' in get(world, "/alice/delta-a", bob)[2].decode()


def test_discussion_pages_validate_their_parameters_like_the_api(world, community):
    ns_swapped = "bob/" + community["best"].split("/", 1)[1]
    bad = {
        "/alice/delta-a/discussions/0": 404,
        "/alice/delta-a/discussions/99": 404,
        "/alice/delta-a/discussions/" + "9" * 30: 404,
        "/alice/delta-a/discussions/x": 404,
        "/alice/delta-a/discussions?status=bogus": 400,
        "/alice/delta-a/discussions?type=issues": 400,
        "/alice/de..lta/discussions": 400,
        "/datasets/alice/delta-a/discussions": 404,
        "/collections/alice/best-deltas-" + "0" * 24: 404,
        "/collections/alice/nope": 404,
        "/collections/a..b/best-deltas": 400,
        f"/collections/{ns_swapped}": 404,
        "/collections?owner=a..b": 400,
        "/collections?owner=" + "x" * 300: 400,
        "/collections?page=0": 400,
        "/collections?page=%C2%B2": 400,
    }
    for path, want in bad.items():
        status, headers, body, _ = get(world, path)
        assert status == want, (path, status, body[:300])
        assert b"Traceback" not in body and (headers["content-type"].startswith("text/html") or path.endswith("/x"))
    for method in ("POST", "PUT", "DELETE"):  # pages only read
        assert _http(world, method, f"/alice/delta-a/discussions/{community['pr']}")[0] in (404, 405)
        assert _http(world, method, f"/collections/{community['best']}")[0] in (404, 405)


def test_collections_are_paged(world, community, monkeypatch):
    from deltahub.server.web import community as pages

    monkeypatch.setattr(pages, "COLLECTIONS_PAGE", 1)
    alice = signed_in_cookie(world, "tok-alice")
    shown = [
        re.findall(r'data-slug="([^"]+)"', get(world, f"/collections?page={n}", alice)[2].decode()) for n in (1, 2, 3)
    ]
    assert shown == [[community["hidden"]], [community["best"]], []]  # most recently updated first, as the API
    assert 'href="/collections?owner=&amp;page=2"' in get(world, "/collections", alice)[2].decode()


def test_discussion_list_filters_and_counts(world, community):
    def rows(path: str) -> list[tuple[str, str]]:
        status, _, body, _ = get(world, path)
        assert status == 200, path
        return re.findall(r'data-num="([0-9]+)" data-status="([a-z]+)"', body.decode())

    pr, question, merged = (str(community[k]) for k in ("pr", "question", "merged"))
    assert rows("/alice/delta-a/discussions") == [(pr, "open")]
    assert rows("/alice/delta-a/discussions?type=discussion") == []
    assert rows("/alice/delta-a/discussions?status=closed") == [(question, "closed")]
    assert rows("/alice/delta-a/discussions?status=all") == [(question, "closed"), (pr, "open")]
    assert rows("/alice/delta-a/discussions?status=all&type=discussion") == [(question, "closed")]
    assert rows("/alice/delta-b/discussions?status=all") == []
    assert rows("/alice/delta-c/discussions?status=merged") == [(merged, "merged")]
    assert rows("/alice/delta-c/discussions?status=closed&type=pull_request") == [(merged, "merged")]
    assert rows("/alice/delta-c/discussions?status=open") == []
    status, _, body, _ = get(world, f"/alice/delta-c/discussions/{merged}")  # its branch is kept after the merge
    assert status == 200 and 'id="discussion-status">merged<' in body.decode() and b"merged notes" in body
    status, _, body, _ = get(world, f"/alice/delta-a/discussions/{question}")
    assert status == 200 and b"changed the status to" in body and b"<p>Yes, on held-out pairs.</p>" in body
    assert b'id="pr-changes"' not in body  # a discussion has no diff
    tab = re.search(
        r'id="tab-discussions">.*?<span class="count"[^>]*>([^<]*)</span>',
        get(world, "/alice/delta-a")[2].decode(),
        re.S,
    )
    assert tab.group(1) == "1 PR · 0 discussions"  # open ones: the question is closed


def test_comment_markdown_is_rendered_and_defused():
    from deltahub.server.web.cardhtml import RepoLinks, render_comment

    html = render_comment(XSS_COMMENT, RepoLinks("/alice/delta-a", "0" * 40))
    parser = _Tags()
    parser.feed(html)
    assert {t for t, _ in parser.tags} <= {"p", "strong", "a", "span", "br"}
    assert not any(k.startswith("on") for _, attrs in parser.tags for k in attrs)
    assert [a["href"] for t, a in parser.tags if t == "a"] == ["/alice/delta-a/raw/" + "0" * 40 + "/NOTES.md"]
    assert "<strong>review</strong>" in html and "&lt;script&gt;" in html and "[image not shown: remote]" in html


def test_pull_request_page_shows_events_and_diff(world, community, browser, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(browser, world, "/alice/delta-a")
    _follow(browser, browser.find_element(By.ID, "tab-discussions"))
    listed = browser.find_elements(By.CSS_SELECTOR, "tr.discussion-row")
    assert [r.get_attribute("data-num") for r in listed] == [str(community["pr"])]  # open ones first
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("all")
    _follow(browser, browser.find_element(By.CSS_SELECTOR, "#discussion-filter button"))
    listed = browser.find_elements(By.CSS_SELECTOR, "tr.discussion-row")
    assert [r.get_attribute("data-num") for r in listed] == [str(community["question"]), str(community["pr"])]
    assert "Which beta?" in listed[0].text and "closed" in listed[0].text
    assert "Add review notes" in listed[1].text and "bob" in listed[1].text
    _shot(browser, shots, "discussions")
    listed = listed[1:]
    _follow(browser, listed[0].find_element(By.TAG_NAME, "a"))
    assert browser.find_element(By.ID, "discussion-title").text.startswith("Add review notes")
    assert browser.find_element(By.ID, "discussion-status").text == "open"
    assert browser.find_element(By.ID, "discussion-author").text == "bob"
    comments = browser.find_elements(By.CSS_SELECTOR, "#events li.comment")
    assert [c.find_element(By.TAG_NAME, "strong").text for c in comments] == ["bob", "mallory", "mallory", "alice"]
    assert comments[2].text.endswith("This comment has been hidden") and "cheap" not in browser.page_source
    assert comments[3].find_element(By.TAG_NAME, "em").text == "looks good"
    assert browser.find_elements(By.CSS_SELECTOR, "#events li.small a code")  # the commit event links its commit
    diff = browser.find_element(By.ID, "pr-diff")
    assert [e.text for e in diff.find_elements(By.CSS_SELECTOR, ".add")] == ["+# Notes", "+line one", "+line <two>"]
    assert "b/NOTES.md" in diff.text
    _shot(browser, shots, "pr")
    # comments are user content: nothing in them ran, and the links that would run are gone
    for link in browser.find_elements(By.CSS_SELECTOR, "#events .comment-body .dropped-link"):
        link.click()
    assert browser.execute_script("return window.__xss === undefined") and "pwned" not in browser.title
    events = browser.find_element(By.ID, "events")
    assert not events.find_elements(By.CSS_SELECTOR, "script, img, [onerror], a[href^='javascript']")
    assert "<script>window.__xss" in events.text


def test_collection_pages_link_repos_and_compose(world, community, browser, shots):
    from selenium.webdriver.common.by import By

    _open(browser, world, "/collections")
    card = browser.find_element(By.CSS_SELECTOR, f".collection-card[data-slug='{community['best']}']")
    assert "3 items" in card.text and "secret-delta" not in browser.page_source
    _follow(browser, card.find_element(By.CSS_SELECTOR, "h2 a"))
    rows = {r.get_attribute("data-item"): r for r in browser.find_elements(By.CSS_SELECTOR, "tr.item-row")}
    assert list(rows) == ["alice/delta-a", "alice/delta-b", "alice/pairs"]
    assert rows["alice/delta-a"].find_element(By.CSS_SELECTOR, "td.note").text == "the first"
    assert "+0.035" in rows["alice/delta-a"].text
    assert (
        rows["alice/pairs"].find_element(By.TAG_NAME, "a").get_attribute("href")
        == world["url"] + "/datasets/alice/pairs"
    )
    _shot(browser, shots, "collection")
    _follow(browser, browser.find_element(By.CSS_SELECTOR, "a.compose-link"))
    ticked = [b.get_attribute("value") for b in browser.find_elements(By.CSS_SELECTOR, "input[name='d']:checked")]
    assert ticked == ["alice/delta-a", "alice/delta-b"]
    models = [
        m["model"].split("+", 1)[1].rsplit("@", 1)[0]
        for m in yaml.safe_load(browser.find_element(By.ID, "gam-yml").text)["models"]
    ]
    assert models == ["alice/delta-a", "alice/delta-b"]


def test_private_collection_needs_its_owner_signed_in(world, community, browser):
    from selenium.webdriver.common.by import By

    _open(browser, world, f"/collections/{community['hidden']}")
    assert "Collection not found" in browser.find_element(By.TAG_NAME, "h1").text
    _sign_in(browser, world, "tok-alice")
    try:
        _open(browser, world, f"/collections/{community['hidden']}")
        assert browser.find_element(By.ID, "collection-title").text.startswith("Hidden picks")
        assert [r.get_attribute("data-item") for r in browser.find_elements(By.CSS_SELECTOR, "tr.item-row")] == [
            "alice/delta-c"
        ]
        _open(browser, world, f"/alice/secret-delta/discussions/{community['secret']}")
        assert browser.find_element(By.ID, "discussion-title").text.startswith("Secret plans")
    finally:
        _sign_out(browser)
    _open(browser, world, f"/alice/secret-delta/discussions/{community['secret']}")
    assert "Repository not found" in browser.find_element(By.TAG_NAME, "h1").text
