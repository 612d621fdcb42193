"""Contributions through the Hub's pull requests: ``submit`` opens one, a curator's ``review`` checks and merges.

``submit`` stages and validates the delta exactly as ``publish`` does (a failing delta never becomes a PR),
then uploads it to the target repo as a pull request. ``review`` pulls the PR's revision, validates it,
optionally scores it against its base, posts the checklist as a comment and, if asked and it passed, merges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..endpoint import Endpoint, api, connect
from ..errors import InputError
from .hub_errors import hub_errors
from .hubops import parse_spec
from .network import check_repo_id
from .provenance import Declared

_PR = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)#(\d+)$")


@dataclass
class Submission:
    repo_id: str
    number: int
    url: str | None


def parse_pr(text: str) -> tuple[str, int]:
    """``NS/NAME#N``."""
    m = _PR.match(text.strip())
    if not m:
        raise InputError(f"'{text}' is not a pull request", "use NS/NAME#N, e.g. alice/deltas#3")
    check_repo_id(m.group(1))
    return m.group(1), int(m.group(2))


def submit(
    folder: str | Path,
    to: str,
    declared: Declared | None = None,
    message: str | None = None,
    endpoint: Endpoint | None = None,
) -> Submission:
    """Open a pull request on ``to`` (an existing repo) with the delta in ``folder`` as it would be published."""
    from .collections import _SLUG
    from .network import remote_calls
    from .publish import check_and_record
    from .stage import staged
    from .validate import ValidationFailed

    if _SLUG.match(to):
        raise InputError(
            f"{to} is a collection; collections take no pull requests",
            "publish the delta, then ask the curator to run: deltahub collection add SLUG NS/DELTA "
            "(or submit to the curator's repo)",
        )
    spec = parse_spec(to)
    check_repo_id(spec.repo_id)
    endpoint = endpoint or connect()
    hub = endpoint.api()
    with remote_calls(hub, spec.repo_id, f"submitting to {spec.repo_id}") as net:
        no_repo = InputError(
            f"no model repo {spec.repo_id} on {endpoint.describe()}: a submission is a pull "
            "request on an existing repo",
            f"publish it yourself instead: deltahub publish {folder} --repo YOUR_NS/NAME",
        )
        with hub_errors(spec.repo_id, endpoint=hub.endpoint, missing_repo=no_repo):
            net(lambda: hub.repo_info(spec.repo_id))
        with staged(folder, declared, name=spec.repo_id.split("/")[1]) as stage:
            try:
                report = check_and_record(stage, Path(folder), True, None, None, hub)
            except ValidationFailed as exc:
                raise ValidationFailed(
                    exc.report,
                    "no pull request was opened",
                    "fix what the checklist says (deltahub validate FOLDER), then submit again",
                ) from None
            title = message or f"deltahub submit: {Path(folder).resolve().name}"
            summary = "\n".join(report.lines()) if report else ""
            commit = net(
                lambda: hub.upload_folder(
                    repo_id=spec.repo_id,
                    folder_path=str(stage),
                    create_pr=True,
                    commit_message=title,
                    commit_description=f"Submitted with `deltahub submit`; validation on the submitter's side:\n\n"
                    f"```\n{summary}\n```\n\nReview with `deltahub review {spec.repo_id}#N`.",
                )
            )
    return Submission(spec.repo_id, int(commit.pr_num), commit.pr_url)


def review(
    pr: str,
    tasks: list[str] | None = None,
    limit: int | None = None,
    merge: bool = False,
    comment: bool = True,
    endpoint: Endpoint | None = None,
) -> dict[str, Any]:
    """Validate the PR's revision (and score it against its base on ``tasks``), comment, merge if asked and it
    passed. Returns ``{"repo_id", "number", "report", "gain", "merged", "comment"}``."""
    import tempfile

    from .measure import measure_gain
    from .network import remote_calls
    from .pull import pull
    from .validate import validate_on_registry

    repo_id, num = parse_pr(pr)
    hub = api(endpoint)
    with remote_calls(hub, repo_id, f"reviewing {pr}") as net:
        details = net(lambda: hub.get_discussion_details(repo_id, num))
        if not details.is_pull_request:
            raise InputError(f"{pr} is a discussion, not a pull request", "review pull requests only")
        if details.status != "open":
            raise InputError(f"{pr} is {details.status}", "review open pull requests")
        with tempfile.TemporaryDirectory(prefix="deltahub-review-") as tmp:
            folder = pull(f"{repo_id}@{details.git_reference}", out=Path(tmp) / "pr", endpoint=endpoint)
            report = validate_on_registry(folder, pr, hub=hub)
            gain = measure_gain(folder, tasks, limit=limit) if tasks and report.ok else None
        hurts = gain is not None and gain["value"] < 0
        text = review_comment(report, gain, merge and report.ok and not hurts)
        if comment:
            net(lambda: hub.comment_discussion(repo_id, num, text))
        merged = False
        if merge and report.ok and not hurts:
            net(lambda: hub.merge_pull_request(repo_id, num, comment="Merged after `deltahub review`."))
            merged = True
    return {"repo_id": repo_id, "number": num, "report": report, "gain": gain, "merged": merged, "comment": text}


def review_comment(report, gain: dict | None, merging: bool) -> str:
    """The markdown a review posts: the checklist, the quick evaluation, the verdict."""
    lines = ["**deltahub review**", "", "```", *report.lines(), "```"]
    if gain is not None:
        lines += ["", "| task | base | with this delta | gain |", "|---|---:|---:|---:|"]
        for task, t in gain["tasks"].items():
            lines.append(f"| {task} | {t['baseline']:.4f} | {t['baseline'] + t['value']:.4f} | {t['value']:+.4f} |")
    if not report.ok:
        verdict = "failed validation; not merged"
    elif gain is not None and gain["value"] < 0:
        verdict = f"passed validation but hurts on the review tasks ({gain['value']:+.4f}); not merged"
    else:
        verdict = "passed; merging" if merging else "passed"
    return "\n".join([*lines, "", f"Verdict: {verdict}."])
