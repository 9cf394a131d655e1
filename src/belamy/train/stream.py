"""Real batches in a seeded, resumable order.

The order of epoch e is a permutation drawn from a generator seeded by (seed, e), so the stream's whole state is
(epoch, batches consumed): a resumed run draws exactly the batches the uninterrupted run would have drawn.
Images travel as uint8 and become floats in [-1, 1] on the training device. Image-to-image sets also yield their
inputs: image i's own input when paired; for unpaired sets, domain A is walked in its own seeded order, one A image
per B image, so the state is still (epoch, batches consumed).

Under DDP every rank walks the same global order and keeps its `shard` of each global batch, so the state stays
(epoch, batches consumed) and is the same on every rank (train/distributed.py).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from belamy.data.base import DataError, ImageSet, PointDistribution


class RealBatch(NamedTuple):
    real: torch.Tensor  # [B, ...] float on the device ([-1, 1] for images)
    labels: torch.Tensor  # [B] int64, -1 where unlabeled
    inputs: torch.Tensor | None  # image-to-image sets: the inputs [B, Ci, H, W] float
    text: torch.Tensor | None  # captioned sets: one caption of each image, as token ids [B, L]
    index: torch.Tensor | None = None  # in-memory sets: each image's row in the data set [B] (on the device)
    caption: torch.Tensor | None = None  # in-memory captioned sets: which of its image's captions `text` is [B]


class RealStream:
    def __init__(self, source, batch_size: int, seed: int, device: torch.device, hflip: bool = False,
                 workers: int = 0, channels_last: bool = False, shard: slice | None = None,
                 all_ranks_agree: Callable[[bool], bool] = bool,
                 captions: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        # captions: every image's captions as token ids [N, K, L] and how many each has [N]; a batch takes one of
        # each image's captions at random
        # batch_size is the global batch; this process trains on rows `shard` of each (all of them by default)
        self.source, self.batch_size, self.seed, self.device = source, batch_size, seed, device
        self.shard = shard or slice(0, batch_size)
        self.all_ranks_agree = all_ranks_agree  # ranks skip a batch together (distributed.all_ranks_agree)
        self.hflip, self.workers = hflip, workers
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch, self.position = 0, 0
        self.bad_files: list[str] = []  # every file skipped so far (the engine logs new ones)
        self._iterator = None
        self._order_cache: tuple[int, torch.Tensor] | None = None
        self.points = isinstance(source, PointDistribution)
        if self.points:
            return
        n = len(source)
        if n < batch_size:
            raise DataError(f"{source.info.name}: {n} images is fewer than the batch size {batch_size}")
        self.batches_per_epoch = n // batch_size  # the last, partial batch is dropped
        self.inputs = None
        self.captions = None if captions is None else (captions[0].to(device), captions[1].to(device))
        if isinstance(source, ImageSet):
            self.images = source.images.to(device)
            self.labels = source.labels.to(device)
            if source.inputs is not None:
                self.inputs = source.inputs.to(device)
                self.unpaired = source.info.pairing == "unpaired"

    # --- resumable state ----------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "bad_files": len(self.bad_files)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._iterator = None

    # --- batches -------------------------------------------------------------------------------------------------

    def _order(self, epoch: int) -> torch.Tensor:
        if self._order_cache is None or self._order_cache[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._order_cache = (epoch, torch.randperm(len(self.source), generator=g))
        return self._order_cache[1]

    def _global_batch(self, position: int) -> torch.Tensor:
        return self._order(self.epoch)[position * self.batch_size:(position + 1) * self.batch_size]

    def _input_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows of `inputs` for this batch: the images' own (paired), or the next ones of domain A's order."""
        if not self.unpaired:
            return index
        m = self.inputs.shape[0]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 7_919)  # A's order, apart from B's
        order = torch.randperm(m, generator=g)
        k = torch.arange(self.position * self.batch_size, (self.position + 1) * self.batch_size)[self.shard]
        return order[k % m].to(self.device)

    def next(self, generator: torch.Generator) -> RealBatch:
        """One batch of this process's rows of the global batch."""
        if self.points:
            x, y = self.source.sample(self.batch_size, generator)
            return RealBatch(x[self.shard].to(self.device), y[self.shard].to(self.device), None, None)
        inputs = text = index = caption = None
        while True:
            if self.position >= self.batches_per_epoch:
                self.epoch, self.position, self._iterator = self.epoch + 1, 0, None
            if isinstance(self.source, ImageSet):
                index = self._global_batch(self.position)[self.shard].to(self.device)
                x, y = self.images[index], self.labels[index]
                if self.inputs is not None:
                    inputs = self.inputs[self._input_rows(index)]
                if self.captions is not None:
                    text, caption = self._caption_of(index, generator)
                self.position += 1
            else:
                x, y, bad = self._next_from_files()
                self.position += 1
                self.bad_files.extend(bad)
                if not self.all_ranks_agree(x.dim() == 4):  # every file of a slice was bad: take the next batch
                    continue
                x, y = x.to(self.device, non_blocking=True), y.to(self.device)
            flip = self._flips(generator, x.shape[0], x.device)
            return RealBatch(self._to_float(x, flip), y, None if inputs is None else self._to_float(inputs, flip),
                             text, index, caption)

    def _caption_of(self, index: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One caption of each image, picked uniformly (drawn for the global batch, then this rank's rows): its
        token ids [B, L] and which of the image's captions it is [B]."""
        tokens, counts = self.captions
        u = torch.rand(self.batch_size, generator=generator)[self.shard].to(index.device)
        slot = (u * counts[index]).long().clamp_max(counts[index] - 1)
        return tokens[index, slot], slot

    def _next_from_files(self):
        if self._iterator is None:
            from torch.utils.data import DataLoader

            from belamy.data.folder import collate_images

            batches = [self._global_batch(i)[self.shard].tolist()
                       for i in range(self.position, self.batches_per_epoch)]
            loader = DataLoader(self.source, batch_sampler=batches, num_workers=self.workers,
                                collate_fn=collate_images, pin_memory=self.device.type == "cuda",
                                persistent_workers=False)
            self._iterator = iter(loader)
        return next(self._iterator)

    def _flips(self, generator: torch.Generator, n: int, device: torch.device) -> torch.Tensor | None:
        """Which rows --hflip mirrors: drawn for the global batch (identical on every rank), then this rank's rows.
        A paired input is mirrored with its image."""
        if not self.hflip:
            return None
        return (torch.rand(self.batch_size, generator=generator) < 0.5)[self.shard][:n].to(device)

    def _to_float(self, x: torch.Tensor, flip: torch.Tensor | None) -> torch.Tensor:
        x = x.to(memory_format=self.memory_format).float().div_(127.5).sub_(1.0)
        if flip is not None:
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x
