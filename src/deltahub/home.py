"""Where deltahub keeps its data: one definition, used by every module that stores something.

``$DELTAHUB_HOME`` if set, else ``~/.cache/deltahub``. Under it: ``registry/`` (the embedded
registry), ``settings.json`` (the saved endpoint), ``deltas/`` (pulled deltas), ``toy/`` (toy
worlds), ``runs/`` (recipe work folders).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "DELTAHUB_HOME"


def home() -> Path:
    """deltahub's data folder (read at each call, so a changed ``DELTAHUB_HOME`` takes effect)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "deltahub")
