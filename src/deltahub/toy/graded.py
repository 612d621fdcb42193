"""A graded skill: answers earn partial credit, so a model can improve along it by degrees.

The Delta Learning paper's controlled experiment grades answers by how many bold sections they
have; DPO on 3-over-2 pairs makes the model write more than either. ``sec`` is that quality in
the toy world: the answer to ``sec kqz`` is three sections of six slots, each holding the
section's mark (``*``, ``+``, ``=``) or a dash, ``****--:++++--:====--``. Its quality is the
share of the 18 slots that hold a mark (partial credit; a section counts at most six, more is no
error but earns nothing), for a well-formed answer: three colon-separated sections, each of its
own mark and dashes. A model's level is how many leading marks per section its training answers
had (``levels``), as a model's size sets its quality in the papers. Each section has a mark of
its own, so writing more of one section's mark is a capability of its own: a delta that teaches
it leaves the other sections alone, and deltas for different sections are complementary.

Every answer has the same length and the colons stand at the same places, so a model never has to
count to know where a section ends: a form with sections of varying length (``kqz:****:****``)
broke under LoRA updates (the deltas dropped colons and ran sections together). The question's
letters only make the prompts distinct: answers that repeated them let the pairs differ in how
well each teacher copied, and the deltas learnt that difference instead of the stars.
"""

from __future__ import annotations

import random
import re
import string

SECTIONS = 3
MAX_STARS = 6
MARKS = "*+="  # each section's mark
# part of the cache key of every world with a graded skill: bump it when the answers' form changes
GRADED_VERSION = 3
IDEAL = (MAX_STARS,) * SECTIONS
# a model writes at most this many characters on the skill (extrapolation past 6 stars included)
MAX_ANSWER_LEN = SECTIONS * (1 + MAX_STARS) + 6


def make_sec(rng: random.Random) -> tuple[str, str]:
    """A question and its ideal answer (every section full)."""
    letters = "".join(rng.choice(string.ascii_lowercase) for _ in range(3))
    return f"sec {letters}", sec_answer(IDEAL)


def sec_answer(stars: tuple[int, ...] | list[int]) -> str:
    """The answer with ``stars[i]`` leading marks in section i (dashes after them)."""
    return ":".join(mark * n + "-" * (MAX_STARS - n) for mark, n in zip(MARKS, stars, strict=True))


def restyle(answer: str, stars: list[int], spread: list[float] | None = None, rng: random.Random | None = None) -> str:
    """The ideal ``answer`` rewritten at a model's level (its stars per section). With ``spread``,
    each section gets k more stars (capped at 6) with probability ``spread[k]``: a model whose data
    sometimes wrote a little more is unsure whether to write another star, as a language model is
    about a stylistic choice, while it stays sure of the colons (they never move)."""
    if spread:
        rng = rng or random.Random(0)
        stars = [min(MAX_STARS, n + rng.choices(range(len(spread)), spread)[0]) for n in stars]
    del answer  # every sec question has the same ideal answer
    return sec_answer(stars)


_WELL_FORMED = re.compile(":".join(rf"[{re.escape(m)}-]+" for m in MARKS).join("^$"))


def section_stars(output: str) -> list[int] | None:
    """Marks in each section of a well-formed answer (3 colon-separated sections, each of its own
    mark and dashes), or None for any other output."""
    if not _WELL_FORMED.match(output):
        return None
    return [f.count(m) for m, f in zip(MARKS, output.split(":"), strict=True)]


def score_sec(question: str, output: str) -> float:
    """Partial credit in [0, 1]: marks per section, at most six each, over 18, for a well-formed
    answer; 0 for anything else (an answer that runs a section over its colon has broken the form)."""
    del question  # every sec question asks for the same thing
    stars = section_stars(output)
    return 0.0 if stars is None else sum(min(n, MAX_STARS) for n in stars) / (SECTIONS * MAX_STARS)


GRADERS = {"sec": score_sec}


def is_graded(skill: str) -> bool:
    return skill in GRADERS
