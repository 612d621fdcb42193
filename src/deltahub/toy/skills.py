"""The toy world's skills: tiny tasks with one exact answer each.

Each skill draws questions from a seeded generator. Which split a question belongs to is decided
by a hash of the question text itself, never by the seed, so the train / pairs / eval splits are
disjoint by construction for every seed and every sample size.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from deltahub.errors import InputError
from deltahub.toy.graded import MAX_ANSWER_LEN, make_sec

# A question lands in a split by its hash modulo 10: 0-5 train, 6-7 pairs, 8-9 eval.
SPLITS: dict[str, range] = {"train": range(0, 6), "pairs": range(6, 8), "eval": range(8, 10)}
# Part of every world's cache key: bump it when a generator or the encoding (data.py) changes,
# so stale worlds are not reused.
SKILLS_VERSION = 4
_LETTERS = "abcdefghij"


@dataclass(frozen=True)
class Skill:
    """A task: ``make(rng)`` returns (question, answer); ``max_answer_len`` bounds decoding."""

    name: str
    description: str
    make: Callable[[random.Random], tuple[str, str]]
    max_answer_len: int


def _rev(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(4, 7)))
    return f"rev {s}", s[::-1]


def _srt(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 7)))
    return f"srt {s}", "".join(sorted(s))


def _dsc(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 7)))
    return f"dsc {s}", "".join(sorted(s, reverse=True))


def _lsr(rng: random.Random) -> tuple[str, str]:
    s = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(4, 7)))
    return f"lsr {s}", "".join(sorted(s))


def _cnt(rng: random.Random) -> tuple[str, str]:
    target = rng.choice(_LETTERS[:4])
    s = "".join(rng.choice(_LETTERS[:4]) for _ in range(rng.randint(5, 9)))
    return f"cnt {target} {s}", str(s.count(target))


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 99), rng.randint(0, 19)
    return f"add {a}+{b}", str(a + b)


SKILLS: dict[str, Skill] = {
    "rev": Skill("rev", "reverse a string of 4-7 letters", _rev, 7),
    "srt": Skill("srt", "sort 4-7 digits ascending", _srt, 7),
    "dsc": Skill("dsc", "sort 4-7 digits descending", _dsc, 7),
    "lsr": Skill("lsr", "sort 4-7 letters from a-j alphabetically", _lsr, 7),
    "cnt": Skill("cnt", "count one letter in a string of 5-9 letters from a-d", _cnt, 1),
    "add": Skill("add", "add a 1-2 digit number and a number below 20", _add, 3),
    # graded (partial credit, toy/graded.py): repeat 3 letters, then 3 sections of up to 6 stars
    "sec": Skill("sec", "repeat 3 sections of six stars or dashes (graded: stars / 18)", make_sec, MAX_ANSWER_LEN),
}


def get_skill(name: str) -> Skill:
    """Look a skill up by name, with an error that lists the known ones."""
    try:
        return SKILLS[name]
    except KeyError:
        raise InputError(f"unknown toy skill {name!r}", f"use one of: {', '.join(SKILLS)}") from None


def split_of(question: str) -> str:
    """The split a question belongs to, from a stable hash of its text."""
    bucket = int.from_bytes(hashlib.sha1(question.encode()).digest()[:4], "big") % 10
    return next(name for name, buckets in SPLITS.items() if bucket in buckets)


def sample(skill: str, split: str, n: int, seed: int = 0, unique: bool = True) -> list[tuple[str, str]]:
    """``n`` (question, answer) pairs of ``skill`` from ``split``, reproducible from ``seed``.

    ``unique`` drops repeated questions (evaluation and pair prompts); training draws may repeat.
    """
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
    sk = get_skill(skill)
    salt = int.from_bytes(hashlib.sha1(f"{skill}/{split}".encode()).digest()[:4], "big")
    rng = random.Random(seed * 1_000_003 + salt)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 10_000:
            raise InputError(
                f"skill {skill!r} has fewer than {n} distinct {split} questions", "ask for fewer questions"
            )
        q, a = sk.make(rng)
        if split_of(q) != split or (unique and q in seen):
            continue
        seen.add(q)
        out.append((q, a))
    return out
