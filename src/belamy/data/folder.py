"""Any folder of images as a GAN training set.

Layout: either a flat folder (unlabeled, labels -1) or one first-level subfolder per class (labels 0..K-1 in
sorted name order; deeper nesting belongs to its first-level folder). Hidden files and folders are skipped.

Every file becomes uint8 [C, R, R]: EXIF orientation applied, transparency composited onto white, 16-bit
grayscale scaled (not clipped) to 8 bits, shorter side resized to R with an antialiased filter, then center-cropped.
A file that cannot be decoded is a `BadImageError`; datasets report it as a 'path: reason' message instead of
raising, because one bad file among a million must not kill a long run.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from belamy.data.base import DataError, DataInfo, ImageSet

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})

T = TypeVar("T")
MIN_SIDE = 8  # smaller sources are icons or thumbnails, not training images
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# Decoders tried on a file's content, whatever its suffix (a .jpg that is really a PNG is common and harmless);
# limiting the list keeps exotic decoders away from untrusted files. (JPEG also opens camera MPO files.)
_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "GIF", "TIFF")
_PIL_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError,
               EOFError)  # EOFError: some plugins signal missing bytes with it


class BadImageError(DataError):
    """A file that cannot become a training image; `str(err)` is 'path: reason'."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple:  # pickle through (path, reason), not the formatted message
        return (type(self), (self.path, self.reason))


# --- finding files -------------------------------------------------------------------------------------------

def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk_files(root: Path) -> Iterator[tuple[str, ...]]:
    """Every file under root as its path parts relative to root, hidden files and folders skipped, folders in sorted
    order. Symlinked folders are followed (data sets often link class folders in), each real folder once (no cycles);
    an unreadable folder is a DataError: it would silently shrink the data set."""

    def walk_error(err: OSError) -> None:
        raise DataError(f"cannot read folder {err.filename}: {err.strerror or err}") from err

    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root).parts
        yield from ((*rel, name) for name in sorted(filenames) if not name.startswith("."))


def scan_folder(root: str | Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Recursively find images under root (sorted, deterministic order). If root has first-level subfolders that
    contain images, class = first-level subfolder (labels 0..K-1 in sorted name order, class_names returned);
    images lying directly in root alongside class folders -> DataError explaining the mix. Without subfolders,
    labels are all -1 and class_names == (). Missing path, a file instead of a folder, or no image files
    (say how many non-image files were seen) -> DataError naming the path. Skip hidden files/dirs (starting '.')."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder of images")

    found: list[tuple[str, ...]] = []  # paths relative to root, as parts
    others = 0
    for parts in walk_files(root):
        if _is_image(parts[-1]):
            found.append(parts)
        else:
            others += 1
    if not found:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"no image files ({exts}) found in {root}; saw {others} other file(s)")
    found.sort()

    loose = [parts for parts in found if len(parts) == 1]
    class_names = tuple(sorted({parts[0] for parts in found if len(parts) > 1}))
    paths = [root.joinpath(*parts) for parts in found]
    if not class_names:
        return paths, [-1] * len(paths), ()
    if loose:
        shown = ", ".join(class_names[:5]) + (", ..." if len(class_names) > 5 else "")
        raise DataError(
            f"{root} mixes {len(loose)} image file(s) at its top level (e.g. {loose[0][0]}) with "
            f"{len(class_names)} class folder(s) ({shown}); "
            "put every image in a class folder for a labeled set, or in one folder without image subfolders "
            "for an unlabeled set")
    index = {name: i for i, name in enumerate(class_names)}
    return paths, [index[parts[0]] for parts in found], class_names


# --- decoding one file ---------------------------------------------------------------------------------------

def _truncation(data: bytes, fmt: str | None) -> str | None:
    """Why the file's bytes end early, or None. Checked on the bytes themselves because PIL decodes truncated
    files without complaint when anything in the process has set ImageFile.LOAD_TRUNCATED_IMAGES."""
    n = len(data)
    if fmt == "PNG":  # chunks of [length][type][data][crc] up to IEND
        pos = 8
        while pos + 8 <= n:
            length = int.from_bytes(data[pos:pos + 4], "big")
            kind = data[pos + 4:pos + 8]
            pos += 12 + length
            if pos > n:
                return f"truncated file ({kind.decode('latin-1')} chunk cut short at byte {n})"
            if kind == b"IEND":
                return None
        return f"truncated file (ends at byte {n} before the IEND chunk)"
    if fmt in ("JPEG", "MPO"):  # walk marker segments to the first scan, then the data must reach EOI
        pos = 2
        while pos + 4 <= n and data[pos] == 0xFF:
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
            elif marker == 0xDA:  # scan data stuffs 0xFF as FF 00, so FF D9 after here is a real end marker
                if data.find(b"\xff\xd9", pos) < 0:
                    return f"truncated file (no end-of-image marker in {n} bytes)"
                return None
            elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
                pos += 2
            else:
                pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        return None if pos + 4 <= n else f"truncated file (ends at byte {n} before the image data)"
    if fmt == "WEBP":  # RIFF header states the size of what follows it
        if n < 8 + int.from_bytes(data[4:8], "little"):
            return f"truncated file ({n} of {8 + int.from_bytes(data[4:8], 'little')} bytes)"
    return None  # BMP and the rest: PIL's own checks


def _to_8bit(im: Image.Image, channels: int) -> Image.Image:
    """Return `im` as 'L' (channels 1) or 'RGB' (channels 3), with the odd modes handled on purpose."""
    if im.mode.startswith("I;16") or im.mode == "I":
        # 16-bit values span 0..65535: scale by 257 (65535 -> 255) instead of clipping everything above 255.
        x = np.asarray(im).astype(np.float64)
        if im.mode == "I" and (x.min() < 0 or x.max() > 65535):  # genuine 32-bit data: use its own range
            lo, hi = x.min(), x.max()
            x = (x - lo) * (255.0 / max(hi - lo, 1.0))
        else:
            x = x / 257.0
        im = Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))  # 2-D uint8 -> mode L
    elif im.mode in _ALPHA_MODES or "transparency" in im.info:
        # Composite onto white: dropping alpha would expose whatever colour the encoder left under it.
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    want = "L" if channels == 1 else "RGB"
    if im.mode == want:
        return im
    if im.mode not in ("L", "RGB"):  # 1-bit, palette, CMYK, YCbCr, ...: through RGB for consistent colour
        im = im.convert("RGB")
    return im.convert(want)


def load_image(path: str | Path, channels: int, resolution: int) -> torch.Tensor:
    """Decode one file to uint8 [channels, resolution, resolution]; channels is 1 (grayscale) or 3 (RGB).

    EXIF orientation is applied; alpha (RGBA, LA, palette or colour-key transparency) is composited onto white;
    16-bit grayscale is scaled by 1/257, not clipped; 1-bit, palette and CMYK go through RGB. The shorter side is
    resized to `resolution` (Lanczos, antialiased) and the centre square kept.
    Raises BadImageError for an unreadable, empty, truncated (detected from the bytes, whatever
    ImageFile.LOAD_TRUNCATED_IMAGES says) or undecodable file, or one whose shorter side is < 8 pixels."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    return square_tensor(decode_file(path, resolution, lambda im: _to_8bit(im, channels)), resolution)


def decode_file(path: str | Path, resolution: int, convert: Callable[[Image.Image], T],
                check: Callable[[Image.Image], str | None] | None = None) -> T:
    """Read and decode one file with every check of load_image, apply EXIF orientation, and return
    `convert(image)` (run while the file is open). `check(image)` may reject the file from its header alone: it
    returns a reason, or None. Raises BadImageError naming the file and the reason."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadImageError(path, f"cannot read file ({e.strerror or e})") from e
    if not data:
        raise BadImageError(path, "empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data), formats=_FORMATS) as im:
            if min(im.size) < MIN_SIDE:
                raise BadImageError(path, f"too small ({im.size[0]}x{im.size[1]} pixels; the shorter side must be "
                                          f"at least {MIN_SIDE})")
            reason = _truncation(data, im.format) or (check(im) if check else None)
            if reason:
                raise BadImageError(path, reason)
            im.draft(None, (resolution, resolution))  # JPEG: decode at 1/2..1/8 scale when still >= resolution
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except _PIL_ERRORS + (KeyError, TypeError):  # malformed EXIF: the pixels are still good
                pass
            return convert(im)
    except BadImageError:
        raise
    except UnidentifiedImageError as e:
        raise BadImageError(path, "not an image file (or not a supported format: "
                                  f"{', '.join(_FORMATS)})") from e
    except Image.DecompressionBombError as e:
        raise BadImageError(path, f"too many pixels ({e})") from e
    except _PIL_ERRORS as e:
        raise BadImageError(path, f"cannot decode ({type(e).__name__}: {e})") from e


def square_tensor(im: Image.Image, resolution: int) -> torch.Tensor:
    """An 'L' or 'RGB' image -> uint8 [C, resolution, resolution]: its centred square, resized (Lanczos)."""
    channels = 1 if im.mode == "L" else 3
    # Resize the centred square straight to resolution x resolution: the same as resizing the shorter side to
    # `resolution` then center-cropping, without rounding the longer side to whole pixels first.
    w, h = im.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    im = im.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    x = torch.from_numpy(np.array(im, dtype=np.uint8))
    x = x.unsqueeze(0) if channels == 1 else x.permute(2, 0, 1).contiguous()
    assert x.shape == (channels, resolution, resolution), x.shape
    return x


# --- data sets -----------------------------------------------------------------------------------------------

class FolderImages(torch.utils.data.Dataset):
    """Files decoded on access (for sets too big to cache)."""

    def __init__(self, root: str | Path, channels: int = 3, resolution: int = 64, name: str | None = None) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        self.root = Path(root)
        self.channels = channels
        self.resolution = resolution
        self.paths, self.labels, class_names = scan_folder(self.root)
        self.info = DataInfo(name or self.root.resolve().name or str(self.root), (channels, resolution, resolution),
                             len(class_names), class_names)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | tuple[None, str]:
        """(uint8 image, label), or (None, 'path: reason') when the file is bad: a bad file must never kill a long
        run; the engine counts and logs it."""
        try:
            return load_image(self.paths[index], self.channels, self.resolution), self.labels[index]
        except BadImageError as e:
            return None, str(e)


def collate_images(items: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """For a DataLoader: stack the good items -> (uint8 [B,C,H,W], int64 labels [B], list of bad-file messages).
    B may be 0 if all were bad: the images are then an empty uint8 tensor of shape [0] (the items carry no shape)."""
    good = [(x, y) for x, y in items if x is not None]
    bad = [msg for x, msg in items if x is None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), bad
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good], dtype=torch.int64), bad


def _decode_each(folder: FolderImages, workers: int) -> Iterator[tuple[torch.Tensor, int] | tuple[None, str]]:
    """folder[i] for every i, in order; workers > 0 decodes in threads (PIL releases the GIL while decoding)."""
    if workers <= 0:
        yield from (folder[i] for i in range(len(folder)))
        return
    chunk = 64 * workers  # bounded look-ahead: a million pending results would all sit in memory
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(folder), chunk):
            yield from pool.map(folder.__getitem__, range(start, min(start + chunk, len(folder))))


def _bad_list(bad: list[str], limit: int = 20) -> str:
    more = f"\n  and {len(bad) - limit} more" if len(bad) > limit else ""
    return "".join(f"\n  {msg}" for msg in bad[:limit]) + more


def verify_folder(folder: FolderImages, workers: int = 0) -> list[str]:
    """Decode every file (strict start-up scan); return the list of 'path: reason' for bad files."""
    return [item[1] for item in _decode_each(folder, workers) if item[0] is None]


def decode_folder(folder: FolderImages, workers: int = 0) -> ImageSet:
    """Decode everything into memory (an ImageSet), skipping bad files and recording them in ImageSet.skipped.
    If every file is bad -> DataError. workers>0 may use a thread pool (PIL releases the GIL)."""
    images = torch.empty((len(folder), *folder.info.shape), dtype=torch.uint8)
    labels = torch.empty(len(folder), dtype=torch.int64)
    skipped: list[str] = []
    n = 0  # good images are packed to the front, so bad files cost no copy at the end
    for item in _decode_each(folder, workers):
        if item[0] is None:
            skipped.append(item[1])
            continue
        images[n], labels[n] = item
        n += 1
    if n == 0:
        raise DataError(f"none of the {len(folder)} image files in {folder.root} could be decoded:"
                        + _bad_list(skipped))
    return ImageSet(folder.info, images[:n], labels[:n], skipped)


def estimate_bytes(folder: FolderImages) -> int:
    """Memory that decode_folder needs: len * C * H * W bytes (uint8)."""
    c, h, w = folder.info.shape
    return len(folder) * c * h * w


def open_folder(root: str | Path, channels: int = 3, resolution: int = 64, cache: bool | None = None,
                strict: bool = False, workers: int = 0,
                cache_limit_bytes: int = 2 * 1024**3) -> ImageSet | FolderImages:
    """strict=True: verify first and raise DataError listing the bad files (up to 20, then 'and N more').
    cache None -> cache when estimate_bytes <= cache_limit_bytes. Returns ImageSet (cached) or FolderImages."""
    folder = FolderImages(root, channels, resolution)
    if cache is None:
        cache = estimate_bytes(folder) <= cache_limit_bytes
    if cache:
        images = decode_folder(folder, workers)  # decodes every file once: also serves as the strict check
        bad = images.skipped
    else:
        images, bad = None, (verify_folder(folder, workers) if strict else [])
    if strict and bad:
        raise DataError(f"{len(bad)} of {len(folder)} image files in {folder.root} could not be decoded "
                        "(strict mode):" + _bad_list(bad))
    return images if images is not None else folder
