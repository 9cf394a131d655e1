"""Data sets: built-in ones by name, or any folder of images by path; `NAME:SPLIT` picks a split, and `NAME@N` (or
`NAME:SPLIT@N`) draws N items of a procedural set such as `shapes`."""

from __future__ import annotations

import inspect
from pathlib import Path

from belamy.data import shapes, translation  # noqa: F401  (registers the built-in shapes and image-to-image sets)
from belamy.data.base import DataError, DataInfo, ImageSet, PointDistribution
from belamy.data.builtin import DATASETS

SPLIT_NAMES = ("train", "test", "val")

__all__ = ["DATASETS", "DataError", "DataInfo", "ImageSet", "PointDistribution", "open_data"]


def with_vocabulary(data):
    """A captioned set gets the vocabulary of its captions in its DataInfo (saved with models trained on it)."""
    if not isinstance(data, ImageSet) or data.captions is None or data.info.vocabulary:
        return data
    import dataclasses

    from belamy.text.tokenizer import Tokenizer

    vocabulary = Tokenizer.build(c for captions in data.captions for c in captions).vocabulary
    return dataclasses.replace(data, info=dataclasses.replace(data.info, vocabulary=tuple(vocabulary)))


def size_spec(spec: str) -> tuple[str, int | None]:
    """"shapes:test@2000" -> ("shapes:test", 2000): the number of items to draw of a procedural set; a spec that
    is not a built-in set's name with an `@N` suffix -> (spec, None) (a folder's path may hold an @)."""
    rest, sep, size = spec.rpartition("@")
    if not sep or _split_suffix(rest)[0] not in DATASETS:
        return spec, None
    if not size.isdigit() or int(size) < 1:
        raise DataError(f"data set {spec!r}: the size after '@' must be a whole number >= 1, got {size!r}")
    return rest, int(size)


def split_spec(spec: str) -> tuple[str, str | None]:
    """"edges2mnist:test" -> ("edges2mnist", "test"); a spec without a known split suffix -> (spec, None). A size
    suffix is dropped ("shapes:test@2000" -> ("shapes", "test"))."""
    return _split_suffix(size_spec(spec)[0])


def _split_suffix(spec: str) -> tuple[str, str | None]:
    name, sep, split = spec.rpartition(":")
    return (name, split) if sep and name and split in SPLIT_NAMES else (spec, None)


def open_data(spec: str, resolution: int | None = None, channels: int | None = None, cache: bool | None = None,
              strict: bool = False, workers: int = 0, pairs: bool = False, input_channels: int | None = None):
    """A built-in data set name (`belamy datasets`) or a folder path -> ImageSet, FolderImages or PointDistribution.

    `NAME:SPLIT` (train, test, val) picks a split of a set that has them; `NAME@N` or `NAME:SPLIT@N` draws N items of
    a procedural set (its loader takes `size`). `pairs`: read a folder as image-to-image data (paired or unpaired,
    see belamy.data.paired), with inputs of `input_channels` (default: `channels`)."""
    spec, size = size_spec(spec)
    spec, split = split_spec(spec)
    if spec in DATASETS:
        loader = DATASETS.get(spec)
        chosen: dict[str, str | int] = {}  # the split and size the spec names
        if split is not None:
            if "split" not in inspect.signature(loader).parameters:
                raise DataError(f"data set {spec!r} has no splits (it is used whole): drop ':{split}'")
            chosen["split"] = split
        if size is not None:
            if "size" not in inspect.signature(loader).parameters:
                raise DataError(f"data set {spec!r} has a fixed size (only a procedural set such as shapes is "
                                f"drawn to any size): drop '@{size}'")
            chosen["size"] = size
        return with_vocabulary(loader(resolution, channels, **chosen))
    path = Path(spec).expanduser()
    if not path.exists() and "/" not in spec and "\\" not in spec:
        # Neither a known name nor an existing path: most likely a mistyped name.
        raise DataError(f"{DATASETS.unknown_message(spec)} (or give the path of a folder of images)")
    from belamy.data.captioned import is_captioned_folder, open_captioned_folder

    if not pairs and is_captioned_folder(path):  # metadata.jsonl, captions.csv or a .txt beside each image
        if split is not None:
            raise DataError(f"{path}: a captioned folder has no splits; give the split's folder itself")
        return with_vocabulary(open_captioned_folder(path, resolution or 64, channels or 3, strict, workers))
    if pairs:
        from belamy.data.paired import open_image_pairs

        return open_image_pairs(path, split or "train", resolution or 64, channels or 3, input_channels, strict,
                                workers)
    if split is not None:
        raise DataError(f"{path}: a folder of images has no splits; give the split's folder itself")
    from belamy.data.folder import open_folder

    return open_folder(path, channels=channels or 3, resolution=resolution or 64, cache=cache, strict=strict,
                       workers=workers)
