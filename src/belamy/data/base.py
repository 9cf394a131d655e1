"""What every data set gives the engine.

Two kinds of source exist:
- `ImageSet` / `FolderImages`: a finite, indexable set of images (uint8, [C, H, W]) with integer labels.
  The engine draws batches by index in a seeded order, so a run can resume at the exact batch it stopped at.
- `PointDistribution`: an infinite 2-D distribution (ring8, grid25) sampled with the engine's generator.

Images leave the data layer as uint8; the engine turns them into floats in [-1, 1] on the training device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class DataError(ValueError):
    """Bad input data: the message names the file, field or value."""


@dataclass(frozen=True)
class DataInfo:
    """Shape and labels of a data set, as recipes need them to build networks."""

    name: str
    shape: tuple[int, ...]  # (C, H, W) for images, (D,) for points
    num_classes: int = 0  # 0: unlabeled
    class_names: tuple[str, ...] = ()

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "num_classes": self.num_classes,
                "class_names": list(self.class_names)}

    @classmethod
    def from_json(cls, d: dict) -> "DataInfo":
        return cls(d["name"], tuple(d["shape"]), int(d.get("num_classes", 0)), tuple(d.get("class_names", ())))


@dataclass
class ImageSet:
    """Decoded images held in memory: uint8 [N, C, H, W] and int64 labels [N] (-1 where unlabeled)."""

    info: DataInfo
    images: torch.Tensor
    labels: torch.Tensor
    skipped: list[str] = field(default_factory=list)  # files that could not be decoded (named in the log)

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.dim() == 4, self.images.shape
        assert tuple(self.images.shape[1:]) == self.info.shape, (self.images.shape, self.info.shape)
        assert self.labels.shape == (self.images.shape[0],)

    def __len__(self) -> int:
        return self.images.shape[0]


class PointDistribution:
    """An infinite distribution of points; `sample` draws with the caller's generator (resumable)."""

    info: DataInfo

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `n` points [n, D] float32 and their mode index [n] (the label)."""
        raise NotImplementedError

    @property
    def modes(self) -> torch.Tensor:
        """Mode centres [M, D]."""
        raise NotImplementedError

    @property
    def std(self) -> float:
        raise NotImplementedError
