"""Run under torchrun on CPU processes: torch's own FSDP2 (``fully_shard``) over gloo shards a small model's
parameters across the processes and trains a step. Prints ``RANK LOCAL_SHAPE LOSS`` per process.

It backs the skip of tests/test_distributed.py's FSDP test: torch runs FSDP on CPU processes; accelerate does
not apply an FSDP config to them.
"""

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

dist.init_process_group("gloo")
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
for layer in model:
    fully_shard(layer)
fully_shard(model)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
loss = model(torch.randn(4, 8)).pow(2).mean()
loss.backward()
optimizer.step()
print(dist.get_rank(), tuple(model[0].weight.to_local().shape), f"{loss.item():.6f}", flush=True)
dist.destroy_process_group()
