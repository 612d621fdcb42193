"""Token-level encoding of toy questions in the chat format every deltahub stage uses.

Models learn on exactly the text that ``deltahub generate`` and TRL will later show them:
the ChatML prompt of one user turn, then the answer and ``<|im_end|>``.
"""

from __future__ import annotations

import torch


def prompt_ids(tokenizer, question: str) -> list[int]:
    """Token ids of the chat prompt for ``question``, ending with the assistant header."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def completion_ids(tokenizer, answer: str) -> list[int]:
    """Token ids of an assistant answer followed by EOS (``<|im_end|>``)."""
    return tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def encode_examples(tokenizer, items: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) for each (question, answer)."""
    return [(prompt_ids(tokenizer, q), completion_ids(tokenizer, a)) for q, a in items]


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch whose labels cover only the completion (loss on answers alone)."""
    width = max(len(p) + len(c) for p, c in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (p, c) in enumerate(examples):
        seq = p + c
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p): len(seq)] = torch.tensor(c)
        mask[i, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
