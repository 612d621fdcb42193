"""A local lm-eval multiple-choice task written from a list of documents, and an independent scorer
for it (shared by the eval tests)."""

from __future__ import annotations

import json
from pathlib import Path


def write_mc_task(folder: Path, name: str, docs: list[dict], split: str = "test") -> Path:
    """``folder/NAME.yaml`` over ``folder/docs.jsonl``, as the task's ``split`` (test, or validation for
    compose); each doc has question, choices and label.

    The prompt is ``question + "\\nAnswer:"`` and each choice is scored as `` " " + choice`` (lm-eval's
    default target delimiter), metric ``acc``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{name}.yaml").write_text(f"""task: {name}
dataset_path: json
dataset_kwargs: {{data_files: {{{split}: {data}}}}}
{split}_split: {split}
output_type: multiple_choice
doc_to_text: "{{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list: [{{metric: acc, aggregation: mean, higher_is_better: true}}]
metadata: {{version: 1.0}}
""")
    return folder


def reference_picks(model_dir, docs: list[dict], adapter=None) -> list[int]:
    """Independent scoring, without lm-eval: per doc, the argmax over choices of the summed
    log-probability of ``" " + choice`` after ``question + "\nAnswer:"`` (with ``adapter`` merged
    into the weights by PEFT)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()
    picks = []
    for d in docs:
        ctx = tok(f"{d['question']}\nAnswer:", add_special_tokens=False)["input_ids"]
        scores = []
        for c in d["choices"]:
            cont = tok(" " + c, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logp = model(torch.tensor([ctx + cont])).logits.log_softmax(-1)[0]
            scores.append(sum(logp[len(ctx) + i - 1, t].item() for i, t in enumerate(cont)))
        picks.append(max(range(len(scores)), key=scores.__getitem__))
    return picks
