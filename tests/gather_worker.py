"""A torchrun worker for tests/test_distributed.py: belamy.train.distributed.gather_rows on two ranks (gloo).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/gather_worker.py

Rank r holds r + 1 rows; prints "rank-R-ok" when the gathered rows and the gradients are right, else raises.
"""

import torch
import torch.distributed as dist

from belamy.train.distributed import gather_rows

if __name__ == "__main__":
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    rows = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0], [5.0, 6.0]])]
    mine = rows[rank].clone().requires_grad_(True)
    gathered = gather_rows(mine)
    assert torch.equal(gathered, torch.cat(rows)), gathered
    weights = torch.arange(6.0).view(3, 2)
    (gathered * weights).sum().backward()  # the same loss on both ranks
    own = weights[:1] if rank == 0 else weights[1:]
    assert torch.equal(mine.grad, 2 * own), (mine.grad, own)  # summed over the 2 ranks
    print(f"rank-{rank}-ok", flush=True)
    dist.destroy_process_group()
