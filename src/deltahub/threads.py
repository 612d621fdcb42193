"""One switch for torch's intra-op threads, shared by the code that runs many small operations.

Factor-space linear algebra works on thin matrices (d×r, r×r) and the toy world on tiny models: on
several OpenMP threads each operation spends more time synchronising than computing (the figures:
docs/measurements.md), and a fixed thread count makes results independent of the machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (the previous count restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
