"""Every size and count limit of the registry, in one place.

Why these numbers: each is well above what huggingface_hub 2.4.0 sends (it batches preupload and
LFS batch requests by 256 files, sends regular files under 10 MB base64-encoded, and nests commit
lines 3 deep) and low enough that one request cannot exhaust memory, disk or the stack.
"""

from __future__ import annotations

MAX_URL_BYTES = 16 * 1024  # a 1,000-character path percent-encoded three times over still fits
MAX_HEADER_BYTES = 64 * 1024  # all header names and values of one request together
MAX_JSON_BYTES = 16 * 1024**2  # one JSON body (preupload, LFS batch, paths-info, settings...)
MAX_JSON_DEPTH = 32  # nesting of any JSON document; the Hub's payloads need 4
MAX_COMMIT_BYTES = 2 * 1024**3  # one NDJSON commit body (regular files travel base64 inside it)
MAX_COMMIT_LINE_BYTES = 96 * 1024**2  # one NDJSON line: a regular file of up to ~70 MB, base64
MAX_COMMIT_LINES = 100_001  # a header and 100,000 operations
MAX_LIST_ITEMS = 10_000  # files in a preupload, objects in an LFS batch, paths in paths-info
MAX_FILE_BYTES = 100 * 1024**3  # one LFS object
MAX_TEXT = 65_536  # a commit title/description, a tag message, a discussion comment
MAX_TITLE = 200  # a discussion or collection title (the Hub's limit)
MAX_NOTE = 500  # a collection item's note, a collection description (the Hub's limit)
MAX_DISCUSSIONS_PAGE = 50  # discussions per page, as the Hub pages them
MAX_CARD_YAML_BYTES = 1024**2  # README.md front matter read for cardData
MAX_CARD_NODES = 100_000  # YAML nodes after alias expansion (a billion-laughs card has ~10^9)
MAX_CARD_JSON_BYTES = 1024**2  # the cardData stored and served
