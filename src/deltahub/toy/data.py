"""Token-level encoding of toy questions in the chat format every deltahub stage uses.

Models learn on exactly the text that ``deltahub generate`` and TRL will later show them:
the chat prompt of one user turn, then the assistant turn as the chat template renders it
(the answer and ``<|im_end|>``). TRL's DPO and SFT tokenise completions the same way, so a
delta's loss never falls on a token the ladder was not trained to produce.
"""

from __future__ import annotations

import torch

# The toy world's chat template: ChatML's turn markers without the role names. A toy prompt is one
# user turn, so "user\n" / "assistant\n" carried no information, yet they were 17 of the ~37 tokens
# of an example, and every forward pass (training, generation, evaluation) paid for them: the
# compact form halves the tokens per example. Any chat-template consumer (TRL, generate) reads it.
TOY_CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message['content'] + '<|im_end|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>' }}{%- endif %}"
)


def toy_tokenizer():
    """The character tokenizer of :mod:`deltahub.tiny` with the toy world's compact chat template."""
    from deltahub.tiny import char_tokenizer

    tok = char_tokenizer()
    tok.chat_template = TOY_CHAT_TEMPLATE
    return tok


def prompt_ids(tokenizer, question: str) -> list[int]:
    """Token ids of the chat prompt for ``question``, ending with the assistant header."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def chat_texts(tokenizer, question: str, answer: str) -> tuple[str, str]:
    """(prompt, assistant turn) for ``answer``: the chat template's full text split after the prompt."""
    user = [{"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": answer}], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not extend the prompt with the assistant turn")
    return prompt, full[len(prompt) :]


def encode_examples(tokenizer, items: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) for each (question, answer): each chat text rendered once,
    all of them tokenised in one batched call (this runs over every model's training pool)."""
    if not items:
        return []
    prompts, completions = zip(*(chat_texts(tokenizer, q, a) for q, a in items), strict=True)
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(list(completions), add_special_tokens=False)["input_ids"]
    return list(zip(prompt_ids, completion_ids, strict=True))


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch whose labels cover only the completion (loss on answers alone)."""
    width = max(len(p) + len(c) for p, c in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (p, c) in enumerate(examples):
        seq = p + c
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p) : len(seq)] = torch.tensor(c)
        mask[i, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
