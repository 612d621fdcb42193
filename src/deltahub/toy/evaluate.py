"""Greedy exact match of a model folder (optionally with a PEFT adapter) on the toy skills.

The evaluation questions come from the hash-defined ``eval`` split with a fixed seed; nothing
about them depends on which model or delta is evaluated.
"""

from __future__ import annotations

from pathlib import Path

from deltahub.toy.skills import get_skill, sample


def load_model(model: str | Path, adapter: str | Path | None = None):
    """(model, tokenizer) in float32 eval mode; an adapter is merged into the weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    tok.padding_side = "left"
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        m = PeftModel.from_pretrained(m, str(adapter)).merge_and_unload()
    return m.eval(), tok


def greedy_answers(model, tokenizer, questions: list[str], max_new_tokens: int, batch_size: int = 128) -> list[str]:
    """Greedy completions of chat prompts, cut at EOS (or pad), without special tokens."""
    import torch

    from deltahub.toy.data import prompt_ids

    out: list[str] = []
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    for start in range(0, len(questions), batch_size):
        chunk = [prompt_ids(tokenizer, q) for q in questions[start: start + batch_size]]
        width = max(map(len, chunk))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=eos, pad_token_id=pad)
        for row in gen[:, width:].tolist():
            cut = [t for t in _until(row, {eos, pad})]
            out.append(tokenizer.decode(cut, skip_special_tokens=True))
    return out


def _until(row: list[int], stops: set[int]):
    for t in row:
        if t in stops:
            return
        yield t


def evaluate_model(model, tokenizer, skills: list[str], n: int = 200, seed: int = 0,
                   batch_size: int = 128) -> dict[str, float]:
    """Exact match per skill and their mean (``avg``) of an already loaded model."""
    scores: dict[str, float] = {}
    for skill in skills:
        items = sample(skill, "eval", n, seed=seed)
        preds = greedy_answers(model, tokenizer, [q for q, _ in items], get_skill(skill).max_answer_len + 1,
                               batch_size)
        scores[skill] = sum(p.strip() == a for p, (_, a) in zip(preds, items)) / len(items)
    scores["avg"] = sum(scores[s] for s in skills) / len(skills)
    return scores


def evaluate(model: str | Path, skills: list[str], adapter: str | Path | None = None, n: int = 200,
             seed: int = 0, batch_size: int = 128) -> dict[str, float]:
    """Exact match per skill and ``avg`` of a model folder, optionally with a PEFT adapter."""
    m, tok = load_model(model, adapter)
    return evaluate_model(m, tok, skills, n=n, seed=seed, batch_size=batch_size)
