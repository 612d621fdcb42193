"""``python -m deltahub`` (also what ``accelerate launch -m deltahub`` runs)."""

from .cli import main

main()
