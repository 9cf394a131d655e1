"""Data sets: built-in ones by name, or any folder of images by path."""

from __future__ import annotations

from pathlib import Path

from belamy.data.base import DataError, DataInfo, ImageSet, PointDistribution
from belamy.data.builtin import DATASETS

__all__ = ["DATASETS", "DataError", "DataInfo", "ImageSet", "PointDistribution", "open_data"]


def open_data(spec: str, resolution: int | None = None, channels: int | None = None, cache: bool | None = None,
              strict: bool = False, workers: int = 0):
    """A built-in data set name (`belamy datasets`) or a folder path -> ImageSet, FolderImages or PointDistribution."""
    if spec in DATASETS:
        return DATASETS.get(spec)(resolution, channels)
    path = Path(spec).expanduser()
    if not path.exists() and "/" not in spec and "\\" not in spec:
        # Neither a known name nor an existing path: most likely a mistyped name.
        raise DataError(f"{DATASETS.unknown_message(spec)} (or give the path of a folder of images)")
    from belamy.data.folder import open_folder

    return open_folder(path, channels=channels or 3, resolution=resolution or 64, cache=cache, strict=strict,
                       workers=workers)
