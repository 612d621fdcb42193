"""GPU memory that `deltahub train` needs for the papers' recipes: an ESTIMATE from parameter and
activation arithmetic (no GPU measured it), per GPU, for the worst batch (every sequence at max_length).

    python bench/train_memory_estimate.py

Terms (bf16 weights and activations; LoRA factors, their gradients and AdamW states in fp32):
  weights      every parameter of the student, 2 bytes
  LoRA+AdamW   r x (in + out) per adapted projection, 16 bytes (weight, gradient, two moments)
  activations  what autograd keeps per token and layer (norm inputs, q/k/v, attention output with
               flash/SDPA, the four MLP intermediates, LoRA-dropout copies of the seven inputs), 2 bytes
               each; with gradient checkpointing only the layer input is kept, plus one layer's full set
               while it is recomputed
  logits       vocabulary-sized rows per token: bf16 logits + one fp32 copy for the log-softmax
DPO runs chosen and rejected together, so a micro-batch of b pairs is 2b sequences. Under DeepSpeed
ZeRO-2 (the recipes' launcher) each GPU still holds the full bf16 weights and its own activations, so
the figure is per GPU. Add ~2-4 GB for the CUDA context, kernels' workspaces and allocator slack.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9


@dataclass(frozen=True)
class Shape:
    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @property
    def params(self) -> float:
        attn = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        body = self.layers * (attn + 3 * self.hidden * self.intermediate)
        return body + self.vocab * self.hidden * (1 if self.tied else 2)

    def lora_params(self, r: int) -> float:
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        pairs = [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]  # q k v o gate up down
        return self.layers * r * sum(a + b for a, b in pairs)

    def saved_per_token_layer(self) -> float:
        """Values autograd keeps per token per layer without checkpointing."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        core = 2 * h + q + 2 * kv + q + 4 * i  # norm inputs, q/k/v, attention output, MLP intermediates
        dropout_copies = 3 * h + q + 2 * h + i  # the inputs of q,k,v | o | gate,up | down
        return core + dropout_copies


QWEN3_8B = Shape("Qwen3-8B", 36, 4096, 12288, 32, 8, 128, 151_936, False)
LLAMA31_8B = Shape("Llama-3.1-8B", 32, 4096, 14336, 32, 8, 128, 128_256, False)


def estimate(shape: Shape, r: int, micro: int, max_length: int, checkpointing: bool) -> dict[str, float]:
    tokens = 2 * micro * max_length
    per_layer = shape.saved_per_token_layer() * 2 * tokens
    acts = shape.layers * shape.hidden * 2 * tokens + per_layer if checkpointing else shape.layers * per_layer
    terms = {
        "weights": shape.params * 2,
        "LoRA+AdamW": shape.lora_params(r) * 16,
        "activations": acts,
        "logits": tokens * shape.vocab * 6,
    }
    terms["total"] = sum(terms.values())
    return {k: v / GB for k, v in terms.items()}


RECIPES = [  # (recipe, shape, r, micro-batch pairs, max_length)
    ("pda-reasoning.yaml", QWEN3_8B, 64, 2, 8192),
    ("accelerate/train-pda-reasoning.yaml", QWEN3_8B, 64, 4, 4096),
    ("delta-learning-tulu3.yaml", LLAMA31_8B, 64, 1, 2048),
    ("(bench) Qwen3-8B shape, 2,048 tokens", QWEN3_8B, 64, 1, 2048),
]


def main() -> None:
    print("ESTIMATE (arithmetic, not measured), GB per GPU at the longest batch; + ~2-4 GB CUDA overhead")
    print(
        f"{'recipe':<38} {'student':<13} {'micro x len':>12} {'ckpt':>5} {'weights':>8} {'LoRA+Adam':>10} "
        f"{'activ.':>7} {'logits':>7} {'total':>7}"
    )
    for recipe, shape, r, micro, length in RECIPES:
        for ckpt in (True, False):
            e = estimate(shape, r, micro, length, ckpt)
            print(
                f"{recipe:<38} {shape.name:<13} {f'{micro} x {length}':>12} {'on' if ckpt else 'off':>5} "
                f"{e['weights']:>8.1f} {e['LoRA+AdamW']:>10.1f} {e['activations']:>7.1f} {e['logits']:>7.1f} "
                f"{e['total']:>7.1f}"
            )


if __name__ == "__main__":
    main()
