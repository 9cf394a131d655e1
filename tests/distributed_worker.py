"""A torchrun worker for tests/test_distributed.py: `belamy train` with a recipe that breaks on rank 1.

    python -m torch.distributed.run --nproc-per-node 2 tests/distributed_worker.py raise|stall -- TRAIN ARGS

"raise": rank 1 raises at its 5th D step; "stall": rank 1 stops answering (sleeps) there, as a hung process would.
"""

import os
import sys
import time

from belamy.cli import main
from belamy.recipes import RECIPES
from belamy.recipes.gan import GAN


class _BreaksOnRank1(GAN):
    name = "test-breaks-on-rank-1"
    mode = "raise"

    def d_step(self, batch):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 5 and os.environ.get("RANK") == "1":
            if self.mode == "raise":
                raise RuntimeError("deliberate failure on rank 1 at its 5th D step")
            time.sleep(3600)
        return super().d_step(batch)


if __name__ == "__main__":
    _BreaksOnRank1.mode = sys.argv[1]
    RECIPES.register(_BreaksOnRank1.name)(_BreaksOnRank1)
    sys.exit(main(["train", "--model", _BreaksOnRank1.name, *sys.argv[3:]]))
