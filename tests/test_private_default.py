"""Private by default on a shared machine: every user reaches every loopback port.

The owner's registry (the on-demand one of a deltahub process, with and without an upstream, and
``deltahub hub serve`` without auth flags and with ``--open``) holds private repos in the owner's
namespaces. A second user is a real subprocess with its own HOME, DELTAHUB_HOME and HF_HOME and no
token. It must not list, read, download or detect them on any read endpoint or web page: every answer
about a private repo is compared, byte for byte (status, headers without Date and the request id,
body), with the answer for the same URL once the owner has deleted the repo. The owner's own process
does all of it with no token given. The owner token goes only where this home started a registry.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_bad_input import assert_one_line_error

from deltahub.server import start_server

SECRET = "PRIVATE-" + os.urandom(6).hex()
REPO, DATASET, DEMO = "local/secretdelta", "local/secretdata", "demo/secretdemo"
MODES = ["on-demand", "on-demand-upstream", "served", "served-open"]
CSRF = "c" * 43  # a fixed CSRF cookie: pages then set none, and their bytes are comparable

OWNER_SCRIPT = r"""
import json, os, sys
import deltahub.endpoint as ep
from huggingface_hub import CommitOperationAdd as Add, hf_hub_download
secret = os.environ["SECRET"].encode()
url, api = ep.connect().url, ep.connect().api()
# no token given: deltahub finds the owner token itself
assert api.whoami()["name"] == "local"
api.create_repo("local/secretdelta", private=True)
api.create_commit("local/secretdelta", [Add("s.txt", secret), Add("sub/s.txt", secret),
                  Add("w.safetensors", secret * 500)], commit_message="secret")
api.create_tag("local/secretdelta", tag="v1")
api.create_commit("local/secretdelta", [Add("pr.txt", secret)], commit_message="secret pr", create_pr=True)
api.create_discussion("local/secretdelta", title="secret talk", description=secret.decode())
api.create_repo("local/secretdata", private=True, repo_type="dataset")
api.upload_file(path_or_fileobj=secret, path_in_repo="d.txt", repo_id="local/secretdata", repo_type="dataset")
api.create_repo("demo/secretdemo", private=True)  # another namespace: the owner's too
api.upload_file(path_or_fileobj=secret, path_in_repo="s.txt", repo_id="demo/secretdemo")
api.create_repo("local/public")
api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id="local/public")
hidden = api.create_collection("Hidden things", private=True).slug
api.add_collection_item(hidden, "local/secretdelta", "model")
shown = api.create_collection("Open things").slug
api.add_collection_item(shown, "local/public", "model")
api.add_collection_item(shown, "local/secretdelta", "model")
owner_sees = sorted(m.id for m in api.list_models())
got = open(hf_hub_download("local/secretdelta", "s.txt", cache_dir=sys.argv[1]), "rb").read() == secret
print(json.dumps({"url": url, "hidden": hidden, "shown": shown, "owner_sees": owner_sees, "download": got}), flush=True)
for line in sys.stdin:
    if line.strip() == "delete":
        for rid, t in (("local/secretdelta", "model"), ("local/secretdata", "dataset"), ("demo/secretdemo", "model")):
            api.delete_repo(rid, repo_type=t)
        print("deleted", flush=True)
"""

PROBE_SCRIPT = r"""
import base64, http.client, json, sys
from urllib.parse import urlparse
url, requests = sys.argv[1], json.load(open(sys.argv[2]))
u = urlparse(url)
out = []
for method, target, body, ctype in requests:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    headers = {"Cookie": "deltahub_csrf=" + "c" * 43}
    data = None
    if body is not None:
        data = base64.b64decode(body)
        headers["Content-Type"] = ctype
    c.request(method, target, body=data, headers=headers)
    r = c.getresponse()
    raw = r.read()
    out.append([r.status, [[k.lower(), v] for k, v in r.getheaders()], base64.b64encode(raw).decode()])
    c.close()
print(json.dumps(out))
"""


def _b(x) -> tuple[str, str] | tuple[None, None]:
    if x is None:
        return None, None
    if isinstance(x, bytes):
        return base64.b64encode(x).decode(), "application/x-www-form-urlencoded"
    if isinstance(x, list):  # NDJSON commit lines
        return base64.b64encode("\n".join(json.dumps(i) for i in x).encode()).decode(), "application/x-ndjson"
    return base64.b64encode(json.dumps(x).encode()).decode(), "application/json"


HEADER = {"key": "header", "value": {"summary": "x"}}
OID = hashlib.sha256((SECRET * 500).encode()).hexdigest()
R, D = f"/api/models/{REPO}", f"/api/datasets/{DATASET}"
# every read (and write) of a repo: API, file URLs, LFS, Xet, discussions, web pages
REPO_REQUESTS = [
    ("GET", R, None),
    ("GET", f"{R}/revision/main", None),
    ("GET", f"{R}/revision/v1", None),
    ("GET", f"{R}/revision/refs%2Fpr%2F1", None),
    ("GET", f"{R}/tree/main", None),
    ("GET", f"{R}/tree/main/sub", None),
    ("GET", f"{R}/tree/main?recursive=true&expand=true", None),
    ("POST", f"{R}/paths-info/main", b"paths=s.txt&paths=sub"),
    ("POST", f"{R}/paths-info/main", {"paths": ["s.txt", "w.safetensors"]}),
    ("GET", f"{R}/commits/main", None),
    ("GET", f"{R}/refs?include_prs=1", None),
    ("GET", f"{R}/discussions", None),
    ("GET", f"{R}/discussions/1?diff=1", None),
    ("GET", f"{R}/discussions/2", None),
    ("GET", f"{R}/lfs-files", None),
    ("GET", f"{R}/auth-check", None),
    ("GET", f"{R}/auth-check/write", None),
    ("GET", f"{R}/xet-read-token/main", None),
    ("GET", f"{R}/xet-write-token/main", None),
    ("GET", f"{R}/no-such-endpoint", None),
    ("GET", f"/{REPO}/resolve/main/s.txt", None),
    ("HEAD", f"/{REPO}/resolve/main/s.txt", None),
    ("GET", f"/{REPO}/resolve/v1/w.safetensors", None),
    ("GET", f"/{REPO}/resolve/refs%2Fpr%2F1/pr.txt", None),
    ("POST", f"/{REPO}.git/info/lfs/objects/batch", {"operation": "download", "objects": [{"oid": OID, "size": 9}]}),
    ("POST", f"/{REPO}.git/info/lfs/objects/batch", {"operation": "upload", "objects": [{"oid": OID, "size": 9}]}),
    ("POST", f"/{REPO}.git/info/lfs/verify", {"oid": OID, "size": 9}),
    ("POST", f"{R}/preupload/main", {"files": [{"path": "s.txt", "size": 1, "sample": ""}]}),
    ("POST", f"{R}/preupload/main?create_pr=1", {"files": [{"path": "s.txt", "size": 1, "sample": ""}]}),
    ("POST", f"{R}/commit/main", [HEADER, {"key": "deletedFile", "value": {"path": "s.txt"}}]),
    ("POST", f"{R}/commit/main?create_pr=1", [HEADER]),
    ("PUT", f"{R}/settings", {"private": False}),
    ("POST", f"{R}/branch/stolen", {}),
    ("DELETE", f"{R}/tag/v1", None),
    ("POST", f"{R}/discussions", {"title": "stolen", "description": "x"}),
    ("POST", f"{R}/discussions/2/comment", {"comment": "x"}),
    ("GET", D, None),
    ("GET", f"{D}/tree/main", None),
    ("GET", f"/datasets/{DATASET}/resolve/main/d.txt", None),
    ("GET", f"/api/models/{DEMO}", None),
    ("GET", f"/{DEMO}/resolve/main/s.txt", None),
    ("GET", "/api/collections?item=models/" + REPO, None),
    # web pages
    ("GET", f"/{REPO}", None),
    ("GET", f"/{REPO}/tree/main", None),
    ("GET", f"/{REPO}/commits/main", None),
    ("GET", f"/{REPO}/raw/main/s.txt", None),
    ("GET", f"/{REPO}/discussions", None),
    ("GET", f"/{REPO}/discussions/2", None),
    ("GET", f"/datasets/{DATASET}", None),
    ("GET", f"/{DEMO}", None),
]
LISTINGS = [
    "/api/models",
    "/api/models?author=local",
    "/api/models?search=secret",
    "/api/models?full=true",
    "/api/datasets",
    "/api/collections?owner=local",
    "/",
    "/models",
    "/datasets",
    "/compose",
    "/collections",
]
IGNORED_HEADERS = {"date", "x-request-id"}


def _env(home: Path, **extra: str) -> dict[str, str]:
    """A user of this machine: its own HOME, DELTAHUB_HOME and HF_HOME, no token of anyone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DELTAHUB_", "HF_"))}
    home.mkdir(parents=True, exist_ok=True)
    (home / "dh").mkdir(exist_ok=True)
    settings = home / "dh" / "settings.json"
    if not settings.exists():
        settings.write_text('{"upstream": null}\n')
    env.update(HOME=str(home), DELTAHUB_HOME=str(home / "dh"), HF_HOME=str(home / "hf"), HF_HUB_DISABLE_XET="1")
    env.update(extra)
    return env


def _probe(url: str, env: dict, requests: list, tmp: Path) -> list:
    spec = tmp / f"requests-{os.urandom(4).hex()}.json"
    spec.write_text(json.dumps([[m, t, *_b(b)] for m, t, b in requests]))
    out = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT, url, str(spec)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [
        (s, {k: v for k, v in h if k not in IGNORED_HEADERS}, base64.b64decode(b)) for s, h, b in json.loads(out.stdout)
    ]


def _serve(env: dict, *flags: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "deltahub.cli", "hub", "serve", "--port", "0", "--no-upstream", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()
    assert first.startswith("deltahub registry at "), first + proc.stderr.read()
    return proc, first.split()[3]


@pytest.fixture(scope="module", params=MODES)
def world(request, tmp_path_factory):
    mode = request.param
    tmp = tmp_path_factory.mktemp(mode)
    owner_env = _env(tmp / "owner", SECRET=SECRET)
    outsider_env = _env(tmp / "outsider")
    upstream = server = None
    if mode == "on-demand-upstream":
        upstream = start_server(tmp / "upstream", open_mode=False, tokens={"tok-up": "up"}, owner=False)
        (tmp / "owner" / "dh" / "settings.json").write_text(json.dumps({"upstream": upstream.url}))
    if mode.startswith("served"):
        server, url = _serve(owner_env, *(["--open"] if mode == "served-open" else []))
        owner_env["DELTAHUB_ENDPOINT"] = url
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(tmp / "cache")],
        env=owner_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = owner.stdout.readline()
    assert line.startswith("{"), line + owner.stderr.read()
    made = json.loads(line)
    url = made["url"]
    slugs = [f"/api/collections/{made['hidden']}", f"/api/collections/local/hidden-things-{'0' * 24}"]
    reads = REPO_REQUESTS + [("GET", t, None) for t in LISTINGS + ["/api/whoami-v2", "/api/settings/repositories"]]
    before = _probe(url, outsider_env, reads + [("GET", s, None) for s in slugs], tmp)
    owner.stdin.write("delete\n")
    owner.stdin.flush()
    assert owner.stdout.readline().strip() == "deleted", owner.stderr.read()
    after = _probe(url, outsider_env, REPO_REQUESTS, tmp)
    write = _probe(
        url, outsider_env, [("POST", "/api/repos/create", {"name": "mine", "organization": "outsider"})], tmp
    )
    served_file = tmp / "owner" / "dh" / "served.json"
    recorded = json.loads(served_file.read_text()) if served_file.exists() else {}
    owner.stdin.close()
    owner.wait(timeout=60)
    yield {
        "mode": mode,
        "url": url,
        "made": made,
        "before": before,
        "after": after,
        "write": write[0],
        "recorded": recorded,
        "server": server,
        "owner_env": owner_env,
    }
    if server is not None and server.poll() is None:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    if upstream is not None:
        upstream.stop()


def test_the_owner_reads_everything_with_no_token_given(world):
    made = world["made"]
    assert {REPO, DEMO, "local/public"} <= set(made["owner_sees"]) and made["download"]


@pytest.mark.parametrize("i", range(len(REPO_REQUESTS)), ids=[f"{m} {t}" for m, t, _ in REPO_REQUESTS])
def test_a_private_repo_answers_byte_for_byte_as_a_missing_one(world, i):
    """An outsider's answer about the private repo equals its answer once the repo is gone (every header
    but Date and the request id, and the body)."""
    method, target, _ = REPO_REQUESTS[i]
    (s1, h1, b1), (s2, h2, b2) = world["before"][i], world["after"][i]
    assert SECRET.encode() not in b1 and b"secret talk" not in b1, (target, b1[:300])
    assert (s1, h1, b1) == (s2, h2, b2), (world["mode"], method, target, s1, b1[:300], s2, b2[:300])
    if "collections" not in target:
        assert s1 in (401, 404), (method, target, s1, b1[:200])  # never served


def test_listings_and_pages_show_no_private_repo(world):
    n = len(REPO_REQUESTS)
    for (status, _, body), target in zip(world["before"][n : n + len(LISTINGS)], LISTINGS, strict=True):
        assert status == 200, target
        assert b"secret" not in body.lower(), (target, body[:300])
        if target in ("/api/models", "/api/models?author=local", "/api/models?full=true"):
            assert b"local/public" in body, target  # the listing works: it only leaves the private repos out
    whoami, storage = world["before"][n + len(LISTINGS) :][:2]
    assert storage[0] == 401 and b"secret" not in storage[2]
    if world["mode"] == "served-open":  # writes need no token there: the caller writes as 'local', reads nothing
        assert whoami[0] == 200
    else:
        assert whoami[0] == 401


def test_a_private_collection_answers_as_a_missing_one(world):
    hidden, made_up = world["before"][-2:]
    assert hidden == made_up and hidden[0] == 404


def test_writes_need_a_token_unless_open(world):
    status = world["write"][0]
    assert status == (200 if world["mode"] == "served-open" else 401), world["write"]


def test_hub_serve_records_itself_for_the_owner_and_forgets_on_exit(world):
    if world["server"] is None:
        pytest.skip("an on-demand registry lives in its process: nothing to record")
    entry = world["recorded"][world["url"]]
    assert entry["pid"] == world["server"].pid and len(entry["tokens"]) == 1
    world["server"].send_signal(signal.SIGINT)
    world["server"].wait(timeout=30)
    served = Path(world["owner_env"]["DELTAHUB_HOME"]) / "served.json"
    assert world["url"] not in json.loads(served.read_text())


# -- the token file ------------------------------------------------------------------------------
def test_one_owner_token_per_home_private_and_agreed_on_by_racing_processes(tmp_path):
    env = _env(tmp_path / "u")
    code = "from deltahub.endpoint.owner import owner_token; print(owner_token())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(6)
    ]
    tokens = {p.communicate(timeout=60)[0].strip() for p in procs}
    path = tmp_path / "u" / "dh" / "owner-token"
    assert len(tokens) == 1 and path.read_text().strip() in tokens
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".owner-token")] == []
    out = subprocess.run(
        [sys.executable, "-m", "deltahub.cli", "hub", "token"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() in tokens and "owner namespace: local" in out.stderr


@pytest.mark.parametrize(
    "damage,needle",
    [
        ("chmod", "can be read by other users"),
        ("garbage", "does not hold a deltahub owner token"),
        ("dir", "cannot"),
        ("home-is-a-file", "cannot"),
    ],
)
def test_a_bad_token_file_is_one_line_with_the_fix(tmp_path, damage, needle):
    env = _env(tmp_path / "u")
    path = tmp_path / "u" / "dh" / "owner-token"
    commands = [("hub", "token"), ("list",)]
    if damage == "home-is-a-file":  # nothing can be created there (root may write anywhere else)
        env["DELTAHUB_HOME"] = str(tmp_path / "a-file")
        (tmp_path / "a-file").write_text("x")
        path, commands = tmp_path / "a-file" / "owner-token", [("hub", "token")]
    elif damage == "dir":
        path.mkdir()
    else:
        path.write_text("dh_" + "a" * 43 if damage == "chmod" else "not a token")
        path.chmod(0o644 if damage == "chmod" else 0o600)
    for args in commands:
        out = subprocess.run(
            [sys.executable, "-m", "deltahub.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert_one_line_error(out.returncode, out.stderr, needle, str(path))


@pytest.mark.parametrize(
    "args,needle",
    [
        (("--token", "no-equals-sign"), "is not TOKEN=USER"),
        (("--token", "=alice"), "is not TOKEN=USER"),
        (("--token", "s3cret=bad/name"), "is not TOKEN=USER"),
        (("--token", "s3cret=local"), "is the registry owner's"),
        (("--tokens", "MISSING"), "--tokens"),
        (("--tokens", "BROKEN"), "--tokens"),
    ],
)
def test_hub_serve_refuses_malformed_tokens_in_one_line(tmp_path, args, needle):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    args = tuple({"MISSING": str(tmp_path / "nope.json"), "BROKEN": str(broken)}.get(a, a) for a in args)
    out = subprocess.run(
        [sys.executable, "-m", "deltahub.cli", "hub", "serve", "--port", "0", *args],
        env=_env(tmp_path / "u"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(out.returncode, out.stderr, needle)


# -- where the owner token goes ------------------------------------------------------------------
class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):
        _Recorder.seen.append(self.headers.get("authorization") or "")
        body = b'{"error":"Repository not found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_owner_token_never_goes_to_a_port_this_home_did_not_start(tmp_path):
    """Another user may listen on any loopback port: neither a chosen endpoint, nor a stale served.json entry, nor an
    inherited HF_TOKEN holding the owner token makes deltahub send it there."""
    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{listener.server_address[1]}"
    env = _env(tmp_path / "u")
    token = subprocess.run(
        [sys.executable, "-m", "deltahub.cli", "hub", "token"], env=env, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    digest = hashlib.sha256(token.encode()).hexdigest()
    (tmp_path / "u" / "dh" / "served.json").write_text(
        json.dumps({url: {"root": "/x", "pid": 2**22 + 12345, "tokens": [digest]}})  # a dead process
    )
    code = (
        "import deltahub.endpoint as ep\n"
        "api = ep.connect().api()\n"
        "try:\n    api.model_info('local/x')\nexcept Exception:\n    pass\n"
    )
    for extra in ({}, {"HF_TOKEN": token}):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "DELTAHUB_ENDPOINT": url, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
    listener.shutdown()
    assert _Recorder.seen and all(token not in h for h in _Recorder.seen), _Recorder.seen


def test_the_owner_signs_in_to_the_pages_with_the_owner_token(tmp_path):
    """Signed out, the pages show no private repo; signed in with `deltahub hub token`'s token, they do."""
    import re

    import httpx2
    from huggingface_hub import HfApi

    from deltahub.endpoint.owner import owner_token

    with start_server(tmp_path / "reg", open_mode=False) as srv:
        api = HfApi(endpoint=srv.url, token=owner_token())
        api.create_repo("demo/hush", private=True)
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="demo/hush")
        with httpx2.Client(base_url=srv.url) as browser:
            assert b"demo/hush" not in browser.get("/").content
            assert browser.get("/demo/hush").status_code == 404
            form = browser.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
            bad = browser.post("/login", data={"csrf": csrf, "token": "dh_" + "x" * 43, "next": "/"})
            assert bad.status_code == 401
            r = browser.post("/login", data={"csrf": csrf, "token": owner_token(), "next": "/demo/hush"})
            assert r.status_code == 303
            page = browser.get("/demo/hush")
            assert page.status_code == 200 and b"local" in page.content  # signed in as the owner
            assert b"demo/hush" in browser.get("/").content
