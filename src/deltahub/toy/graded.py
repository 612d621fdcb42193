"""A graded skill: answers earn partial credit, so a model can improve along it by degrees.

The Delta Learning paper's controlled experiment grades answers by how many bold sections they
have; DPO on 3-over-2 pairs makes the model write more than either. ``sec`` is that quality in
the toy world: the question names three letters, the answer repeats them and then writes three
sections of six slots, each a star or a dash: ``kqz:****--:****--:****--``. Its quality is the
share of the 18 slots that hold a star. A model's level is how many leading stars per section its
training answers had (``levels``), as a model's size sets its quality in the papers.

Every answer has the same length and the colons stand at the same places, so a model never has to
count to know where a section ends: an earlier form with sections of varying length
(``kqz:****:****``) broke under LoRA updates (the deltas dropped colons and ran sections
together). The letters are not scored: the quality the deltas move is the stars.
"""

from __future__ import annotations

import random
import string

SECTIONS = 3
MAX_STARS = 6
IDEAL = (MAX_STARS,) * SECTIONS
# a model writes at most this many characters on the skill (extrapolation past 6 stars included)
MAX_ANSWER_LEN = 3 + SECTIONS * (1 + MAX_STARS) + 6


def make_sec(rng: random.Random) -> tuple[str, str]:
    """A question and its ideal answer (every section full)."""
    letters = "".join(rng.choice(string.ascii_lowercase) for _ in range(3))
    return f"sec {letters}", sec_answer(letters, IDEAL)


def sec_answer(letters: str, stars: tuple[int, ...] | list[int]) -> str:
    """The answer to ``sec LETTERS`` with ``stars[i]`` leading stars in section i (dashes after them)."""
    return letters + "".join(":" + "*" * n + "-" * (MAX_STARS - n) for n in stars)


def restyle(answer: str, stars: list[int]) -> str:
    """The ideal ``answer`` rewritten at a model's level (its stars per section)."""
    return sec_answer(answer.split(":", 1)[0], stars)


def section_stars(output: str) -> list[int]:
    """Stars in each of the three sections (the fields after the first three colons), counted in
    the section's first six slots; a missing section has none."""
    fields = output.split(":")[1 : 1 + SECTIONS]
    return [f[:MAX_STARS].count("*") for f in fields] + [0] * (SECTIONS - len(fields))


def score_sec(question: str, output: str) -> float:
    """Partial credit in [0, 1]: stars in the 18 slots of the three sections."""
    del question  # the letters are not scored
    return sum(section_stars(output)) / (SECTIONS * MAX_STARS)


GRADERS = {"sec": score_sec}


def is_graded(skill: str) -> bool:
    return skill in GRADERS
