"""``python -m deltahub.train ...`` (e.g. under ``accelerate launch -m deltahub.train``)."""

from ..cli import main

if __name__ == "__main__":
    import sys

    main(["train", *sys.argv[1:]])
