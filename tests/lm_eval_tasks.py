"""A local lm-eval multiple-choice task written from a list of documents (shared by the eval tests)."""

from __future__ import annotations

import json
from pathlib import Path


def write_mc_task(folder: Path, name: str, docs: list[dict]) -> Path:
    """``folder/NAME.yaml`` over ``folder/docs.jsonl``; each doc has question, choices and label.

    The prompt is ``question + "\\nAnswer:"`` and each choice is scored as `` " " + choice`` (lm-eval's
    default target delimiter), metric ``acc``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{name}.yaml").write_text(f"""task: {name}
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list: [{{metric: acc, aggregation: mean, higher_is_better: true}}]
metadata: {{version: 1.0}}
""")
    return folder
