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
    # Image-to-image data: the shape of the input images (domain A) that go with the images (domain B), and how:
    # "paired" (input i goes with image i: pix2pix) or "unpaired" (two independent sets: CycleGAN). () and "": none.
    input_shape: tuple[int, ...] = ()
    pairing: str = ""
    captioned: bool = False  # each image has one or more captions (text-to-image)
    vocabulary: tuple[str, ...] = ()  # captioned sets: the words of their captions (belamy.text.Tokenizer)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "num_classes": self.num_classes,
                "class_names": list(self.class_names), "input_shape": list(self.input_shape),
                "pairing": self.pairing, "captioned": self.captioned, "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_json(cls, d: dict) -> "DataInfo":
        return cls(d["name"], tuple(d["shape"]), int(d.get("num_classes", 0)), tuple(d.get("class_names", ())),
                   tuple(d.get("input_shape", ())), d.get("pairing", ""), bool(d.get("captioned", False)),
                   tuple(d.get("vocabulary", ())))


@dataclass
class ImageSet:
    """Decoded images held in memory: uint8 [N, C, H, W] and int64 labels [N] (-1 where unlabeled).

    Image-to-image sets also hold `inputs` (uint8 [M, Ci, H', W'], the domain-A images): with pairing "paired",
    M == N and inputs[i] is the input of images[i]; with "unpaired", the two sets are independent (any M).
    Captioned sets hold one or more captions per image and, for built-in sets, the attributes each was drawn from."""

    info: DataInfo
    images: torch.Tensor
    labels: torch.Tensor
    skipped: list[str] = field(default_factory=list)  # files that could not be decoded (named in the log)
    inputs: torch.Tensor | None = None
    input_labels: torch.Tensor | None = None  # class of each input image, where known (label preservation)
    captions: list[list[str]] | None = None
    attributes: list[dict] | None = None

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.dim() == 4, self.images.shape
        assert tuple(self.images.shape[1:]) == self.info.shape, (self.images.shape, self.info.shape)
        assert self.labels.shape == (self.images.shape[0],)
        n = self.images.shape[0]
        if self.inputs is not None:
            assert self.inputs.dtype == torch.uint8 and tuple(self.inputs.shape[1:]) == self.info.input_shape
            assert self.info.pairing == "unpaired" or self.inputs.shape[0] == n, (self.inputs.shape, n)
        assert self.captions is None or len(self.captions) == n
        assert self.attributes is None or len(self.attributes) == n

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
