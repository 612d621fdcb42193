"""User-facing errors: one line that names the problem, and the fix.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DeltahubError(Exception):
    """An error caused by the user's input or environment, with a suggested fix."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class InputError(DeltahubError):
    """A file, folder, option or recipe the user gave is not usable."""


class AdapterError(InputError):
    """A LoRA adapter folder cannot be read or merged."""
