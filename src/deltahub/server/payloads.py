"""Every JSON and NDJSON body the registry accepts, as typed models, parsed in one bounded way.

Why one place: a body of the wrong shape (a list where an object belongs, an int for a path,
100,000 levels of nesting, a lone UTF-16 surrogate) must be a 400 that names the field, never a
KeyError deep in a handler. Parsing order: size (caller), nesting depth (a pre-scan, so
``json.loads`` never recurses deeply), JSON syntax, then the model (strict types: no "1" for 1).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import BadRequest, PayloadTooLarge
from .limits import (
    MAX_COMMIT_LINE_BYTES,
    MAX_COMMIT_LINES,
    MAX_FILE_BYTES,
    MAX_JSON_DEPTH,
    MAX_LIST_ITEMS,
    MAX_NOTE,
    MAX_TEXT,
    MAX_TITLE,
)
from .paths import check_body_path, check_oid, check_revision

M = TypeVar("M", bound=BaseModel)

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SIZE_LIMIT = 2**62  # SQLite integers are 64-bit; anything bigger is a bad request, not an OverflowError


def nesting_ok(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``raw`` nests at most ``limit`` deep, found with C-speed regex passes and no recursion.

    Strings are dropped, then only brackets kept; each pass removes the innermost ``[]``/``{}`` pairs,
    which lowers the depth by exactly one. A run of ``limit + 1`` opening brackets (which is what an
    unclosed bomb reduces to) fails at once.
    """
    s = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    too_deep = re.compile(rb"[\[{]{%d}" % (limit + 1))
    for _ in range(limit + 1):
        if too_deep.search(s):
            return False
        reduced = _EMPTY_PAIR.sub(b"", s)
        if reduced == s:  # empty (balanced within the limit) or malformed, which json.loads reports shallowly
            return True
        s = reduced
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(raw: bytes, what: str) -> Any:
    """``raw`` as a JSON value, or BadRequest naming ``what``; depth-checked before parsing."""
    if not nesting_ok(raw):
        raise BadRequest(f"invalid {what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, NaN, huge ints
        raise BadRequest(f"invalid {what}: not valid JSON ({exc})") from None
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"invalid {what}: a string holds a lone UTF-16 surrogate") from None
    return value


def _explain(exc: ValidationError, what: str) -> BadRequest:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    got = type(err.get("input")).__name__ if "input" in err else "nothing"
    return BadRequest(f"invalid {what}: {where}: {err['msg']} (got {got})")


def validate(value: Any, model: type[M] | TypeAdapter, what: str) -> Any:
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(value)
        return model.model_validate(value)
    except ValidationError as exc:
        raise _explain(exc, what) from None


def parse_body(raw: bytes, model: type[M], what: str | None = None) -> M:
    """A JSON request body as ``model`` (an empty body counts as ``{}``, as the Hub treats it)."""
    what = what or f"{model.__name__} body"
    return validate(load_json(raw, what) if raw.strip() else {}, model, what)


# -- field types -----------------------------------------------------------------------------
RepoPath = Annotated[str, AfterValidator(check_body_path)]
FileOrFolder = Annotated[str, AfterValidator(lambda p: check_body_path(p.rstrip("/")))]  # 'data/' names a folder
Oid = Annotated[str, AfterValidator(check_oid)]
RefName = Annotated[str, AfterValidator(check_revision)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Size = Annotated[int, Field(ge=0, le=_SIZE_LIMIT)]
RepoType = Literal["model", "dataset", "space"]
ShortSha = Annotated[str, Field(pattern=r"^[0-9a-f]{7,40}$")]


class Payload(BaseModel):
    """Strict types (no coercion), unknown fields ignored (newer clients add some)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


# -- repos -----------------------------------------------------------------------------------
class CreateRepo(Payload):
    name: str
    organization: str | None = None
    type: RepoType | None = None
    private: bool | None = None
    visibility: Literal["public", "private", "protected"] | None = None


class DeleteRepo(Payload):
    name: str
    organization: str | None = None
    type: RepoType | None = None


class MoveRepo(Payload):
    fromRepo: Annotated[str, Field(max_length=300)]
    toRepo: Annotated[str, Field(max_length=300)]
    type: RepoType | None = None


class Settings(Payload):
    private: bool | None = None
    visibility: Literal["public", "private", "protected"] | None = None
    gated: Literal["auto", "manual", False] | None = None  # False: not gated (True is not a Hub value)


class ValidateYaml(Payload):
    content: str = ""
    repoType: RepoType | None = None


class Branch(Payload):
    startingPoint: RefName | None = None


class Tag(Payload):
    tag: Annotated[str, Field(max_length=1024)]  # checked after the revision: the Hub reports a missing revision first
    message: Text | None = None


class SuperSquash(Payload):
    message: Text | None = None


class LfsDeletions(Payload):
    sha: Annotated[list[Oid], Field(max_length=MAX_LIST_ITEMS)]
    rewriteHistory: bool = True


class LfsDelete(Payload):
    deletions: LfsDeletions


# -- discussions and pull requests -------------------------------------------------------------
Title = Annotated[str, Field(max_length=MAX_TITLE)]


class CreateDiscussion(Payload):
    title: Title
    description: Text | None = None
    pullRequest: bool = False


class Comment(Payload):
    comment: Text


class OptionalComment(Payload):
    comment: Text | None = None


class StatusChange(Payload):
    status: Literal["open", "closed"]
    comment: Text | None = None


class Rename(Payload):
    title: Title


class EditComment(Payload):
    content: Text


# -- collections -------------------------------------------------------------------------------
Note = Annotated[str, Field(max_length=MAX_NOTE)]
Theme = Literal["orange", "blue", "green", "purple", "pink", "indigo"]


class CreateCollection(Payload):
    title: Title
    namespace: Annotated[str, Field(max_length=100)] | None = None
    description: Note | None = None
    private: bool = False


class UpdateCollection(Payload):
    title: Title | None = None
    description: Note | None = None
    private: bool | None = None
    position: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    theme: Theme | None = None


class CollectionItemRef(Payload):
    id: Annotated[str, Field(min_length=1, max_length=300)]
    type: Literal["model", "dataset", "space", "collection", "paper", "bucket"]


class AddCollectionItem(Payload):
    item: CollectionItemRef
    note: Note | None = None


class UpdateCollectionItem(Payload):
    note: Note | None = None
    position: Annotated[int, Field(ge=0, le=1_000_000)] | None = None


class PathsInfo(Payload):
    paths: Annotated[list[FileOrFolder], Field(max_length=MAX_LIST_ITEMS)] = []
    expand: bool | None = None


# -- uploads ---------------------------------------------------------------------------------
class PreuploadFile(Payload):
    path: RepoPath
    size: Size = 0
    sample: Annotated[str, Field(max_length=4096)] | None = None


class Preupload(Payload):
    files: Annotated[list[PreuploadFile], Field(max_length=MAX_LIST_ITEMS)]
    gitIgnore: Text | None = None


class LfsObject(Payload):
    oid: Oid
    size: Size


class LfsRef(Payload):
    name: Annotated[str, Field(max_length=1024)]


class LfsBatch(Payload):
    operation: Literal["upload", "download"]
    objects: Annotated[list[LfsObject], Field(max_length=MAX_LIST_ITEMS)]
    transfers: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=16)] | None = None
    hash_algo: Literal["sha256"] | None = None
    ref: LfsRef | None = None


class LfsVerify(Payload):
    oid: Oid
    size: Size


# -- commit lines (NDJSON, one object per line) ----------------------------------------------
class CommitHeader(Payload):
    summary: Text | None = None
    description: Text | None = None
    parentCommit: ShortSha | None = None


class AddFile(Payload):
    path: RepoPath
    content: str
    encoding: Literal["base64", "utf-8"] = "base64"

    def data(self) -> bytes:
        """The file's bytes; invalid base64 is a 400, never an empty file."""
        if self.encoding == "utf-8":
            return self.content.encode("utf-8")
        try:
            return base64.b64decode(self.content, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"invalid commit line: file {self.path!r} has invalid base64 content") from None


class AddLfsFile(Payload):
    path: RepoPath
    oid: Oid
    algo: Literal["sha256"] = "sha256"
    size: Annotated[int, Field(ge=0, le=MAX_FILE_BYTES)] | None = None  # absent on copies: the store knows it


class DeleteFile(Payload):
    path: RepoPath


class DeleteFolder(Payload):
    path: str

    def folder(self) -> str:
        return check_body_path(self.path.rstrip("/"))


class HeaderLine(Payload):
    key: Literal["header"]
    value: CommitHeader


class FileLine(Payload):
    key: Literal["file"]
    value: AddFile


class LfsFileLine(Payload):
    key: Literal["lfsFile"]
    value: AddLfsFile


class DeletedFileLine(Payload):
    key: Literal["deletedFile"]
    value: DeleteFile


class DeletedFolderLine(Payload):
    key: Literal["deletedFolder"]
    value: DeleteFolder


CommitLine = TypeAdapter(
    Annotated[HeaderLine | FileLine | LfsFileLine | DeletedFileLine | DeletedFolderLine, Field(discriminator="key")]
)


def parse_commit_line(
    raw: bytes, number: int
) -> HeaderLine | FileLine | LfsFileLine | DeletedFileLine | DeletedFolderLine:
    what = f"commit line {number}"
    return validate(load_json(raw, what), CommitLine, what)


class LineLimits:
    """Counts NDJSON lines and their lengths while a commit body streams in, refusing early."""

    def __init__(self) -> None:
        self.lines = 0
        self._current = 0  # bytes of the line being received

    def feed(self, chunk: bytes) -> None:
        first = chunk.find(b"\n")
        if first < 0:
            self._current += len(chunk)
            self._check()
            return
        self._current += first
        self._check()
        last = chunk.rfind(b"\n")
        if last - first > MAX_COMMIT_LINE_BYTES:  # only then can a line inside the chunk be too long
            for line in chunk[first + 1 : last].split(b"\n"):
                self._current = len(line)
                self._check()
        self.lines += chunk.count(b"\n")
        self._current = len(chunk) - last - 1
        self._check()

    def _check(self) -> None:
        if self._current > MAX_COMMIT_LINE_BYTES:
            raise PayloadTooLarge(
                f"a commit line is longer than {MAX_COMMIT_LINE_BYTES // 2**20} MB: upload big files through LFS"
            )
        if self.lines + (self._current > 0) > MAX_COMMIT_LINES:
            raise PayloadTooLarge(f"a commit has more than {MAX_COMMIT_LINES - 1} operations: split it")
