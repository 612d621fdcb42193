"""Greedy exact match of a model folder (optionally with a PEFT adapter) on the toy skills.

The evaluation questions come from the hash-defined ``eval`` split with a fixed seed; nothing
about them depends on which model or delta is evaluated.

Exact match is scored in one teacher-forced forward pass instead of by decoding: greedy decoding
returns the answer exactly when, along the answer's own tokens, every next-token argmax is the
answer's next token and the argmax after the last one is a stop token (EOS or pad). Any other
greedy output differs from the answer at its first wrong argmax. So the pass gives the same
verdict as decoding (tests/test_toy.py checks it against a naive decoder) at a fraction of the
cost: one pass over prompt + answer instead of a prefill and one pass per generated token.
"""

from __future__ import annotations

from pathlib import Path

from deltahub.toy.skills import sample


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


def greedy_answers(
    model, tokenizer, questions: list[str], max_new_tokens: int, batch_size: int = 128, sample_seed: int | None = None
) -> list[str]:
    """Greedy completions of chat prompts, cut at EOS (or pad), without special tokens; with ``sample_seed``,
    samples at temperature 1 instead (the same seed draws the same random numbers for every model)."""
    import torch

    from deltahub.toy.data import prompt_ids

    out: list[str] = []
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    for start in range(0, len(questions), batch_size):
        chunk = [prompt_ids(tokenizer, q) for q in questions[start : start + batch_size]]
        width = max(map(len, chunk))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        sampling = {}
        if sample_seed is not None:
            torch.manual_seed(sample_seed + start)
            sampling = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
        with torch.inference_mode():
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                **(sampling or {"do_sample": False}),
                eos_token_id=eos,
                pad_token_id=pad,
            )
        for row in gen[:, width:].tolist():
            cut = [t for t in _until(row, {eos, pad})]
            out.append(tokenizer.decode(cut, skip_special_tokens=True))
    return out


SAMPLE_SEED = 1234  # a sampling seed for comparing models' sampled answers (the same random numbers)


def _until(row: list[int], stops: set[int]):
    for t in row:
        if t in stops:
            return
        yield t


def exact_match(model, tokenizer, items: list[tuple[str, str]], batch_size: int = 512) -> list[bool]:
    """Per (question, answer): would greedy decoding return exactly the answer's tokens and then stop?

    One teacher-forced pass over right-padded prompt + answer + EOS (see the module docstring);
    sequences are batched by length, so almost no position is padding.
    """
    import torch

    from deltahub.toy.data import prompt_ids

    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    stops = torch.tensor(sorted({eos, pad}))
    prompts = [prompt_ids(tokenizer, q) for q, _ in items]
    answers = tokenizer([a for _, a in items], add_special_tokens=False)["input_ids"] if items else []
    order = sorted(range(len(items)), key=lambda i: len(prompts[i]) + len(answers[i]))
    out = [False] * len(items)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        seqs = [prompts[i] + answers[i] + [eos] for i in chunk]
        width = max(map(len, seqs))
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        with torch.inference_mode():  # right padding: real tokens never attend to the pads after them
            pred = model(input_ids=ids).logits.argmax(-1)
        for row, i in enumerate(chunk):
            first, n = len(prompts[i]) - 1, len(answers[i])  # the last prompt token predicts the first answer token
            ok = bool((pred[row, first : first + n] == ids[row, first + 1 : first + 1 + n]).all())
            out[i] = ok and bool(torch.isin(pred[row, first + n], stops))
    return out


GRADED_SAMPLES = 4  # answers sampled per question for a graded skill's expected credit
GRADED_BATCH = 2048


def graded_scores(
    model,
    tokenizer,
    skill: str,
    items: list[tuple[str, str]],
    batch_size: int = GRADED_BATCH,
    samples: int = GRADED_SAMPLES,
) -> list[float]:
    """Expected partial credit of each question on a graded skill (toy/graded.py): the mean score of
    ``samples`` answers sampled at temperature 1, scored by the skill's own parser. The greedy score of
    these near-deterministic models is a step function of a delta's strength (a slot counts only once its
    mark is the likelier token), so a delta that moves some probability onto the marks scored nothing
    until it flipped a slot, and the cliff decided each row; the expected credit under the model's own
    distribution moves with every shift. Every model draws the same random numbers (``SAMPLE_SEED``), so
    paired rows differ by their distributions, not by luck. ``samples=0``: the greedy answer."""
    from deltahub.toy.graded import GRADERS
    from deltahub.toy.skills import get_skill

    questions = [q for q, _ in items]
    limit = get_skill(skill).max_answer_len + 1
    if samples <= 0:
        outputs = greedy_answers(model, tokenizer, questions, limit, batch_size)
        return [GRADERS[skill](q, out) for q, out in zip(questions, outputs, strict=True)]
    repeated = [q for q in questions for _ in range(samples)]
    outputs = greedy_answers(model, tokenizer, repeated, limit, batch_size, sample_seed=SAMPLE_SEED)
    credit = [GRADERS[skill](q, out) for q, out in zip(repeated, outputs, strict=True)]
    return [sum(credit[i * samples : (i + 1) * samples]) / samples for i in range(len(questions))]


def toy_credits(
    model: str | Path, skills: list[str], adapter: str | Path | None = None, n: int = 200, seed: int = 0
) -> dict[str, list[float]]:
    """Per graded skill, the expected partial credit of each of the ``n`` evaluation questions."""
    m, tok = load_model(model, adapter)
    return {s: graded_scores(m, tok, s, sample(s, "eval", n, seed=seed)) for s in skills}


def evaluate_model(
    model, tokenizer, skills: list[str], n: int = 200, seed: int = 0, batch_size: int = 512, details: bool = False
) -> dict:
    """Exact match per skill and their mean (``avg``) of an already loaded model.

    With ``details``: ``{"scores": {...}, "correct": {skill: "0110..."}}``, the per-question verdicts
    (in the order of ``sample(skill, "eval", n, seed)``) that paired statistics need; a graded skill's
    are its partial credits (a list of floats) and its score is their mean.
    """
    scores: dict[str, float] = {}
    correct: dict[str, str | list[float]] = {}
    from deltahub.toy.graded import is_graded

    for skill in skills:
        items = sample(skill, "eval", n, seed=seed)
        if is_graded(skill):
            credit = graded_scores(model, tokenizer, skill, items)
            scores[skill] = sum(credit) / len(credit)
            correct[skill] = credit
            continue
        hits = exact_match(model, tokenizer, items, batch_size)
        scores[skill] = sum(hits) / len(hits)
        correct[skill] = "".join("1" if h else "0" for h in hits)
    scores["avg"] = sum(scores[s] for s in skills) / len(skills)
    return {"scores": scores, "correct": correct} if details else scores


def evaluate(
    model: str | Path,
    skills: list[str],
    adapter: str | Path | None = None,
    n: int = 200,
    seed: int = 0,
    batch_size: int = 512,
    details: bool = False,
) -> dict:
    """Exact match per skill and ``avg`` of a model folder, optionally with a PEFT adapter."""
    m, tok = load_model(model, adapter)
    return evaluate_model(m, tok, skills, n=n, seed=seed, batch_size=batch_size, details=details)
