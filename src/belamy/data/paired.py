"""Image-to-image data sets from disk: pairs (pix2pix) or two independent domains (CycleGAN).

`open_image_pairs` finds the layout (see `describe_layouts`) and decodes everything into an ImageSet whose `images`
are the targets (domain B) and `inputs` the inputs (domain A). Each file is decoded as `folder.load_image` does
(EXIF orientation, alpha onto white, 16-bit scaling, antialiased resize of the centre square); a bad file drops
its pair and is recorded in ImageSet.skipped as 'path: reason', as in folder.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import torch
from PIL import Image

from belamy.data.base import DataError, DataInfo, ImageSet
from belamy.data.folder import (_PIL_ERRORS, IMAGE_EXTENSIONS, BadImageError, _bad_list, _to_8bit, decode_file,
                                load_image, square_tensor)

SPLITS = ("train", "test", "val")  # split folder names recognised even when another split is requested
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height

T = TypeVar("T")
R = TypeVar("R")


def describe_layouts() -> str:
    """The three folder layouts open_image_pairs reads, for error messages and the README."""
    return (
        "image-to-image folder layouts (A = input, B = target):\n"
        "  1. unpaired (CycleGAN): ROOT/trainA/, ROOT/trainB/ (and testA/, testB/ for split 'test'); "
        "the two domains are independent sets, of any sizes\n"
        "  2. paired folders: ROOT/A/ and ROOT/B/ holding files with the same names (extension aside: a.png goes "
        "with a.jpg), or with one subfolder per split: ROOT/A/train/, ROOT/B/train/, ...\n"
        "  3. pix2pix aligned: ROOT/train/ (or ROOT itself) holding files with A and B side by side, "
        "A on the left, B on the right (width = 2 x height)")


# --- finding files -------------------------------------------------------------------------------------------

def _subdirs(folder: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(folder) if not e.name.startswith(".") and e.is_dir())
    except OSError as e:
        raise DataError(f"cannot read folder {folder}: {e.strerror or e}") from e


def _images_in(folder: Path) -> list[Path]:
    """Image files directly in `folder` (not in subfolders), sorted; none -> DataError naming the folder."""
    try:
        entries = [e for e in os.scandir(folder) if not e.name.startswith(".") and e.is_file()]
    except OSError as e:
        raise DataError(f"cannot read folder {folder}: {e.strerror or e}") from e
    found = sorted(Path(e.path) for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS)
    if not found:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"no image files ({exts}) found in {folder}; saw {len(entries)} other file(s)"
                        + (" (subfolders are not read)" if _subdirs(folder) else ""))
    return found


def _has_images(folder: Path) -> bool:
    return any(not e.name.startswith(".") and e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
               for e in os.scandir(folder))


def _match_stems(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path]]:
    """Pair the files of a_dir and b_dir by name without extension; any file without a partner -> DataError."""
    sides = []
    for folder in (a_dir, b_dir):
        by_stem: dict[str, Path] = {}
        for path in _images_in(folder):
            if path.stem in by_stem:
                raise DataError(f"{folder} holds two files named {path.stem!r} ({by_stem[path.stem].name} and "
                                f"{path.name}): pairs are matched on the name without extension, so each name "
                                "must be unique")
            by_stem[path.stem] = path
        sides.append(by_stem)
    a, b = sides
    lonely = [f"{a[s]}: no {s}.* in {b_dir}" for s in sorted(a.keys() - b.keys())]
    lonely += [f"{b[s]}: no {s}.* in {a_dir}" for s in sorted(b.keys() - a.keys())]
    if lonely:
        raise DataError(f"{len(lonely)} file(s) in {a_dir} and {b_dir} have no partner of the same name (extension "
                        "aside) in the other folder:" + _bad_list(lonely))
    return [(a[s], b[s]) for s in sorted(a)]


def _check_split(root: Path, names: tuple[str, ...], found: list[str], split: str) -> None:
    """DataError unless every root/name is a folder: name what was looked for and what there is instead."""
    if not all((root / n).is_dir() for n in names):
        wanted = " and ".join(f"{n}/" for n in names)
        raise DataError(f"no {wanted} in {root} for split {split!r} (found: {', '.join(found) or 'nothing'})")


# --- decoding ------------------------------------------------------------------------------------------------

def load_aligned_pair(path: str | Path, resolution: int, channels: int,
                      input_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One pix2pix file (A left, B right) -> (A uint8 [input_channels, R, R], B uint8 [channels, R, R]).

    Decoded once with folder.load_image's checks and conversions; each half is then resized like a whole file there
    (centre square, Lanczos). Raises BadImageError for what load_image rejects, and for a file whose width is not
    twice its height (+-1 pixel, after EXIF orientation)."""

    def two_to_one(im: Image.Image) -> str | None:
        w, h = im.size
        try:
            if im.getexif().get(0x0112) in _ROTATED:
                w, h = h, w
        except _PIL_ERRORS + (KeyError, TypeError):  # malformed EXIF: decode_file skips it too
            pass
        return None if abs(w - 2 * h) <= 1 else f"expected A|B side by side: width 2x height, got {w}x{h}"

    converted = decode_file(path, resolution, lambda im: {c: _to_8bit(im, c) for c in {channels, input_channels}},
                            check=two_to_one)

    def half(right: bool, c: int) -> torch.Tensor:
        # Crop the half first (a filter reading across the middle would blend A into B), then resize its centred
        # square as load_image does. An odd width drops the middle column.
        im = converted[c]
        w, h = im.size
        hw = w // 2
        return square_tensor(im.crop((w - hw, 0, w, h) if right else (0, 0, hw, h)), resolution)

    return half(False, input_channels), half(True, channels)


def _map(fn: Callable[[T], R], items: list[T], workers: int) -> Iterator[R]:
    """fn(item) for every item, in order; workers > 0 runs in threads (PIL releases the GIL while decoding)."""
    if workers <= 0:
        yield from map(fn, items)
        return
    chunk = 64 * workers  # bounded look-ahead, as folder._decode_each
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), chunk):
            yield from pool.map(fn, items[start:start + chunk])


def _decode_all(decode: Callable[[T], tuple[torch.Tensor, ...]], items: list[T], shapes: Iterable[tuple[int, ...]],
                workers: int, what: str) -> tuple[list[torch.Tensor], list[str]]:
    """Decode every item into preallocated uint8 tensors (one per shape), packing the good ones to the front;
    a BadImageError skips the item and records 'path: reason' (every bad file of it). All bad -> DataError."""

    def attempt(item: T) -> tuple[torch.Tensor, ...] | list[str]:
        try:
            return decode(item)
        except _BadPair as e:
            return e.messages
        except BadImageError as e:
            return [str(e)]

    outs = [torch.empty((len(items), *s), dtype=torch.uint8) for s in shapes]
    skipped: list[str] = []
    n = 0
    for result in _map(attempt, items, workers):
        if isinstance(result, list):
            skipped += result
            continue
        for out, x in zip(outs, result):
            out[n] = x
        n += 1
    if n == 0:
        raise DataError(f"none of the {len(items)} {what} could be decoded:" + _bad_list(skipped))
    return [out[:n] for out in outs], skipped


class _BadPair(Exception):
    """A pair with one or two bad files: one 'path: reason' message per bad file."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(messages)
        self.messages = messages


def _decode_pair(paths: tuple[Path, Path], resolution: int, channels: int,
                 input_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) from two files; both are tried so that the log names every bad file of the pair."""
    out, bad = [], []
    for path, c in zip(paths, (input_channels, channels)):
        try:
            out.append(load_image(path, c, resolution))
        except BadImageError as e:
            bad.append(str(e))
    if bad:
        raise _BadPair(bad)
    return out[0], out[1]


# --- the data set --------------------------------------------------------------------------------------------

def _detect(root: Path, split: str) -> tuple[str, list[str]]:
    """Which layout root holds ('unpaired', 'paired' or 'aligned') and its first-level folder names."""
    dirs = _subdirs(root)
    splits = set(SPLITS) | {split}
    cycle = [d for d in dirs if len(d) > 1 and d[-1] in "AB" and d[:-1] in splits]
    folders = [d for d in dirs if d in ("A", "B")]
    aligned = [d for d in dirs if d in splits] + (["image files at the top level"] if _has_images(root) else [])
    seen = [(kind, found) for kind, found in (("unpaired", cycle), ("paired", folders), ("aligned", aligned)) if found]
    if not seen:
        raise DataError(f"{root} holds no image-to-image layout (found: {', '.join(dirs) or 'no folders'});\n"
                        + describe_layouts())
    if len(seen) > 1:
        names = {"unpaired": "unpaired (CycleGAN)", "paired": "paired folders", "aligned": "pix2pix aligned"}
        mixed = "; ".join(f"{names[kind]}: {', '.join(found)}" for kind, found in seen)
        raise DataError(f"{root} mixes image-to-image layouts ({mixed}); keep one, or point at a folder holding "
                        "just one.\n" + describe_layouts())
    return seen[0][0], dirs


def open_image_pairs(root: str | Path, split: str = "train", resolution: int = 64, channels: int = 3,
                     input_channels: int | None = None, strict: bool = False, workers: int = 0) -> ImageSet:
    """Decode an image-to-image data set into memory: `images` the targets (domain B, uint8 [N, channels, R, R]),
    `inputs` the inputs (domain A, [M, input_channels, R, R]), labels -1; info.pairing 'paired' (M == N, inputs[i]
    goes with images[i]) or 'unpaired' (independent sets). The layout is detected (see describe_layouts).

    A flat layout (ROOT/A + ROOT/B without split subfolders, or aligned files directly in ROOT) is split 'train'
    only. Bad files are skipped (with their partner) and listed in `skipped`; strict=True raises instead."""
    input_channels = channels if input_channels is None else input_channels
    for name, c in (("channels", channels), ("input_channels", input_channels)):
        if c not in (1, 3):
            raise ValueError(f"{name} must be 1 or 3, got {c}")
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if not split or split != os.path.basename(split) or split.startswith("."):
        raise ValueError(f"split must be a plain folder name such as 'train', got {split!r}")
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder of images")
    shape, input_shape = (channels, resolution, resolution), (input_channels, resolution, resolution)
    layout, dirs = _detect(root, split)

    skipped: list[str] = []
    total = 0  # files (unpaired) or pairs, for the strict message
    if layout == "unpaired":
        names = (f"{split}A", f"{split}B")
        _check_split(root, names, [d for d in dirs if len(d) > 1 and d[-1] in "AB"], split)
        sides = []
        for name, c in zip(names, (input_channels, channels)):
            paths = _images_in(root / name)

            def decode_one(p: Path, c: int = c) -> tuple[torch.Tensor]:
                return (load_image(p, c, resolution),)

            (x,), bad = _decode_all(decode_one, paths, [(c, resolution, resolution)], workers,
                                    f"image files in {root / name}")
            sides.append(x)
            skipped += bad
            total += len(paths)
        inputs, images = sides
        what = "image files"
    else:
        if layout == "paired":
            a_dir, b_dir = root / "A", root / "B"
            if not (a_dir.is_dir() and b_dir.is_dir()):
                raise DataError(f"{root} has {'A' if a_dir.is_dir() else 'B'}/ but no "
                                f"{'B' if a_dir.is_dir() else 'A'}/: paired folders need both")
            split_dirs = sorted({f"{side}/{d}" for side in "AB" for d in _subdirs(root / side)})
            if split_dirs:  # the pix2pix combine script's layout: A/train, B/train, ...
                _check_split(root, (f"A/{split}", f"B/{split}"), split_dirs, split)
                a_dir, b_dir = a_dir / split, b_dir / split
            elif split != "train":
                raise DataError(f"no A/{split}/ and B/{split}/ in {root} (found: A, B without split subfolders, "
                                "which are split 'train')")
            pairs = _match_stems(a_dir, b_dir)

            def decode(p: tuple[Path, Path]) -> tuple[torch.Tensor, torch.Tensor]:
                return _decode_pair(p, resolution, channels, input_channels)

            where = f"pairs in {a_dir} and {b_dir}"
        else:
            split_dirs = [d for d in dirs if d in SPLITS or d == split]
            if split_dirs and _has_images(root):
                raise DataError(f"{root} holds both image files at its top level and split folders "
                                f"({', '.join(split_dirs)}): keep one")
            if split_dirs:
                _check_split(root, (split,), split_dirs, split)
                folder = root / split
            elif split == "train":
                folder = root
            else:
                raise DataError(f"no {split}/ in {root} (found: aligned image files at the top level, which are "
                                "split 'train')")
            pairs = _images_in(folder)

            def decode(p: Path) -> tuple[torch.Tensor, torch.Tensor]:
                return load_aligned_pair(p, resolution, channels, input_channels)

            where = f"aligned A|B files in {folder}"
        (inputs, images), skipped = _decode_all(decode, pairs, [input_shape, shape], workers, where)
        total = len(pairs)
        what = "pairs" if layout == "paired" else "aligned files"

    if strict and skipped:
        raise DataError(f"{len(skipped)} bad image file(s) among the {total} {what} in {root} (strict mode):"
                        + _bad_list(skipped))
    info = DataInfo(root.resolve().name or str(root), shape, input_shape=input_shape,
                    pairing="unpaired" if layout == "unpaired" else "paired")
    labels = torch.full((images.shape[0],), -1, dtype=torch.int64)
    return ImageSet(info, images, labels, skipped, inputs=inputs)
