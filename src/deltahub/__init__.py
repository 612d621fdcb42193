"""deltahub: share and compose preference deltas.

Importing the package is cheap on purpose: heavy libraries (torch, transformers, huggingface_hub)
are imported by the modules that need them, so the Hub client environment can be set first
(see ``deltahub.endpoint``).
"""

__version__ = "0.1.0"
