"""Discussions and pull requests, in the Hub's JSON shapes (what huggingface_hub's community.py parses).

Who may do what: anyone who can read the repo sees its discussions; a signed-in reader may open one
(a pull request too) and comment; its author or a writer of the repo may rename it, change its
status and edit their comments; only writers hide comments and merge. A private repo's
discussions are as invisible as the repo (``Hub.repo`` answers RepoNotFound first).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import payloads as P
from ..context import body, hub_of, int_param, iso, param, rtype_of
from ..discussion_store import Discussion, Event
from ..errors import BadRequest, Forbidden
from ..limits import MAX_DISCUSSIONS_PAGE
from ..storage import Repo, full_ref

R = "/api/{t:repotype}/{ns}/{name}/discussions"
HIDDEN = "This comment has been hidden"


def _user(name: str) -> dict:
    return {"name": name, "fullname": name, "type": "user", "avatarUrl": None, "isPro": False}


def event_json(e: Event) -> dict:
    data = dict(e.data)
    if e.type == "comment":
        latest = data["latest"]
        latest = dict(latest, author=_user(latest["author"]), updatedAt=iso(latest["updatedAt"]))
        if data.get("hidden"):
            latest.update(raw=HIDDEN, html=f"<p>{HIDDEN}</p>")
        history = [dict(h, author=_user(h["author"]), updatedAt=iso(h["updatedAt"])) for h in data["history"]]
        data = dict(data, latest=latest, history=[] if data.get("hidden") else history)
    return {"id": e.id, "type": e.type, "createdAt": iso(e.created), "author": _user(e.author), "data": data}


def discussion_json(repo: Repo, d: Discussion, comments: int | None = None) -> dict:
    out = {
        "num": d.num,
        "title": d.title,
        "status": d.status,
        "isPullRequest": d.is_pr,
        "createdAt": iso(d.created),
        "author": _user(d.author),
        "repo": {"name": repo.repo_id, "type": repo.type},
        "pinned": False,
        "topReactions": [],
    }
    if comments is not None:
        out["numComments"] = comments
    return out


def _repo(request: Request) -> Repo:
    return hub_of(request).repo(request, rtype_of(request))


def _num(request: Request) -> int:
    return request.path_params["num"]


def _may_edit(request: Request, repo: Repo, author: str) -> str:
    """The caller, when it wrote ``author``'s item or may write the repo; 403 otherwise."""
    hub = hub_of(request)
    user = hub.signed_in(request, "change a discussion")
    if user != author and not hub.can_write(user, repo):
        raise Forbidden(f"Only {author} or a writer of {repo.repo_id} may do this")
    return user


async def list_discussions(request: Request):
    hub = hub_of(request)
    repo = _repo(request)
    q = request.query_params
    found = hub.discussions.list(repo, q.get("type"), q.get("status"), q.get("author"))
    start = int_param(request, "p", 0) * MAX_DISCUSSIONS_PAGE
    page = found[start : start + MAX_DISCUSSIONS_PAGE]
    closed = sum(1 for d in hub.discussions.list(repo, q.get("type"), "closed", q.get("author")))
    return JSONResponse(
        {
            "discussions": [discussion_json(repo, d) for d in page],
            "count": len(found),
            "start": start,
            "numClosedDiscussions": closed,
        }
    )


async def create_discussion(request: Request):
    hub = hub_of(request)
    repo = _repo(request)
    user = hub.signed_in(request, "open a discussion")
    hub.mirrors.refuse_changes(repo)
    req = await body(request, P.CreateDiscussion)
    num = hub.discussions.open(repo, _title(req.title), (req.description or "").strip(), user, req.pullRequest)
    return JSONResponse(
        {"num": num, "pullRequest": req.pullRequest, "url": f"{hub.repo_url(request, repo)}/discussions/{num}"}
    )


async def get_discussion(request: Request):
    hub = hub_of(request)
    repo = _repo(request)
    d = hub.discussions.get(repo, _num(request))
    events = hub.discussions.events(repo, d.num)
    out = discussion_json(repo, d, sum(1 for e in events if e.type == "comment"))
    out["events"] = [event_json(e) for e in events]
    if d.is_pr:
        changes = {"base": full_ref("branch", d.target or "main")}
        if d.merge_commit:
            changes["mergeCommitId"] = d.merge_commit
        out.update(changes=changes, filesWithConflicts=[])
        if request.query_params.get("diff") in ("1", "true"):
            out["diff"] = hub.discussions.diff(repo, d)
    return JSONResponse(out)


async def comment(request: Request):
    hub = hub_of(request)
    repo = _repo(request)
    user = hub.signed_in(request, "comment")
    req = await body(request, P.Comment)
    if not req.comment.strip():
        raise BadRequest("A comment cannot be empty")
    return JSONResponse({"newMessage": event_json(hub.discussions.comment(repo, _num(request), user, req.comment))})


def _editable(request: Request) -> tuple[Repo, Discussion, str]:
    """The repo, the discussion of the URL and the caller, who must be its author or a writer."""
    repo = _repo(request)
    d = hub_of(request).discussions.get(repo, _num(request))
    return repo, d, _may_edit(request, repo, d.author)


def _title(raw: str) -> str:
    title = raw.strip()
    if len(title) < 3:
        raise BadRequest("The title must be at least 3 characters long")
    return title


async def change_status(request: Request):
    repo, d, user = _editable(request)
    req = await body(request, P.StatusChange)
    event = hub_of(request).discussions.set_status(repo, d.num, req.status, user, req.comment)
    return JSONResponse({"newStatus": event_json(event)})


async def rename(request: Request):
    repo, d, user = _editable(request)
    title = _title((await body(request, P.Rename)).title)
    return JSONResponse({"newTitle": event_json(hub_of(request).discussions.rename(repo, d.num, title, user))})


async def merge(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=True)
    req = await body(request, P.OptionalComment)
    user = hub.writer(request) or "anonymous"
    sha = hub.discussions.merge(repo, _num(request), user, req.comment, hub.read_policy(hub.user(request)))
    return JSONResponse({"mergeCommitId": sha})


async def edit_comment(request: Request):
    hub = hub_of(request)
    repo = _repo(request)
    num, event_id = _num(request), param(request, "comment").lower()
    event = hub.discussions.comment_event(repo, num, event_id)
    user = _may_edit(request, repo, event.author)
    req = await body(request, P.EditComment)
    return JSONResponse(
        {"updatedComment": event_json(hub.discussions.edit_comment(repo, num, event_id, req.content, user))}
    )


async def hide_comment(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=True)
    num, event_id = _num(request), param(request, "comment").lower()
    event = hub.discussions.hide_comment(repo, num, event_id, hub.writer(request) or "anonymous")
    return JSONResponse({"updatedComment": event_json(event)})


ROUTES = [
    Route(R, list_discussions, methods=["GET"]),
    Route(R, create_discussion, methods=["POST"]),
    Route(R + "/{num:int}", get_discussion, methods=["GET"]),
    Route(R + "/{num:int}/comment", comment, methods=["POST"]),
    Route(R + "/{num:int}/status", change_status, methods=["POST"]),
    Route(R + "/{num:int}/title", rename, methods=["POST"]),
    Route(R + "/{num:int}/merge", merge, methods=["POST"]),
    Route(R + "/{num:int}/comment/{comment}/edit", edit_comment, methods=["POST"]),
    Route(R + "/{num:int}/comment/{comment}/hide", hide_comment, methods=["POST"]),
]
