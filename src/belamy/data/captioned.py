"""Text-to-image data from disk: a folder of images with one or more captions each.

`open_captioned_folder` finds the images under ROOT (recursively; hidden files and folders skipped), reads their
captions from the one caption source ROOT holds (see `describe_caption_sources`), and decodes every captioned image
into memory as `folder.load_image` does (EXIF orientation, alpha onto white, 16-bit scaling, antialiased resize of
the centre square). Captions are stripped and their inner whitespace collapsed to single spaces.

Problems with the captions themselves (bad lines, entries naming missing files, paths leaving ROOT) are errors: they
mean the caption file does not describe this folder. Images the captions leave out are skipped and recorded in
ImageSet.skipped as 'path: no caption', and bad image files as 'path: reason', as in folder.py; strict=True raises
for either instead. Empty captions are dropped and noted in `skipped` when the image has other captions.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import torch

from belamy.data.base import DataError, DataInfo, ImageSet
from belamy.data.folder import IMAGE_EXTENSIONS, BadImageError, _bad_list, load_image, walk_files
from belamy.data.paired import _map

METADATA_FILE = "metadata.jsonl"
CSV_FILE = "captions.csv"
SIDECAR = ".txt"
_SOURCE_NAMES = {METADATA_FILE: f"{METADATA_FILE} (one JSON object per line)",
                 CSV_FILE: f"{CSV_FILE} (columns file_name, text)",
                 SIDECAR: ".txt caption files beside the images"}


def describe_caption_sources() -> str:
    """The three ways a folder can hold captions, for error messages and the README."""
    return (
        "captioned folder layouts (keep exactly one caption source in ROOT):\n"
        f"  1. ROOT/{METADATA_FILE} (Hugging Face imagefolder): one JSON object per line, "
        '{"file_name": "sub/a.png", "text": "a caption"}; "text" may be a list of captions, and several lines may '
        "name the same file\n"
        f"  2. ROOT/{CSV_FILE}: a header line naming the columns file_name and text, then one row per caption\n"
        "  3. a .txt file beside each image with the same name (a.png, a.txt): one caption per non-empty line\n"
        "  file names are relative to ROOT, with '/' between folders")


@dataclass(frozen=True)
class _Entry:
    """Captions a source gives one image: `where` names their place in the source ('metadata.jsonl line 3')."""

    where: str
    file: str  # relative to root, '/'-separated, normalized
    texts: tuple[str, ...]  # as written: cleaned and checked later


# --- finding files -------------------------------------------------------------------------------------------

def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _scan(root: Path) -> tuple[dict[str, Path], dict[str, str], int]:
    """Walk root (hidden entries skipped, symlinked folders followed once) -> (images: relative name -> path, in
    sorted order; sidecars: relative .txt name -> relative name of the image beside it, or '' when none is;
    number of other files, .txt files aside)."""

    found: list[tuple[str, ...]] = []
    texts: list[tuple[str, ...]] = []
    others = 0
    for parts in walk_files(root):
        if _is_image(parts[-1]):
            found.append(parts)
        elif os.path.splitext(parts[-1])[1].lower() == SIDECAR:
            texts.append(parts)
        else:
            others += 1
    found.sort()
    images = {"/".join(parts): root.joinpath(*parts) for parts in found}
    by_stem: dict[str, list[str]] = defaultdict(list)  # 'sub/a' -> ['sub/a.jpg', 'sub/a.png']
    for name in images:
        by_stem[os.path.splitext(name)[0]].append(name)
    sidecars = {}
    for parts in sorted(texts):
        name = "/".join(parts)
        partners = by_stem.get(os.path.splitext(name)[0], [])
        if len(partners) > 1:
            raise DataError(f"{root / name} sits beside {len(partners)} images with its name "
                            f"({', '.join(partners)}): a .txt file holds the captions of the one image with the same "
                            "name, so rename all but one")
        sidecars[name] = partners[0] if partners else ""
    return images, sidecars, others


def _sources(root: Path, sidecars: dict[str, str]) -> list[str]:
    found = [name for name in (METADATA_FILE, CSV_FILE) if (root / name).is_file()]
    return found + ([SIDECAR] if any(sidecars.values()) else [])


def is_captioned_folder(root: str | Path) -> bool:
    """True if root holds a caption source: metadata.jsonl, captions.csv, or a .txt file beside an image."""
    root = Path(root)
    if not root.is_dir():
        return False
    if (root / METADATA_FILE).is_file() or (root / CSV_FILE).is_file():
        return True
    try:
        return bool(_sources(root, _scan(root)[1]))
    except DataError:  # unreadable subfolders, ambiguous .txt files: open_captioned_folder says what is wrong
        return True


# --- reading captions ----------------------------------------------------------------------------------------

def _relative(name: str) -> tuple[str, str]:
    """A file name from a caption file -> (normalized relative name, '') or ('', why it is refused). No name may
    leave root: absolute paths and '..' are refused, so a caption file cannot make us read files elsewhere."""
    slashed = name.replace("\\", "/")  # captions written on Windows
    if slashed.startswith("/") or PureWindowsPath(name).drive:
        return "", f"absolute path {name!r}: file names must be relative to the folder"
    parts = [p for p in slashed.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "", f"{name!r} leaves the folder ('..'): file names must stay inside it"
    if not parts:
        return "", f"file_name {name!r} names no file"
    return "/".join(parts), ""


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often start files with a byte-order mark
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e


def _raise_problems(path: Path, problems: list[str]) -> None:
    if problems:
        raise DataError(f"{path} has {len(problems)} bad line(s):" + _bad_list(problems))


def _read_metadata(root: Path) -> list[_Entry]:
    """metadata.jsonl: {"file_name": ..., "text": str | [str, ...]} per line; blank lines are allowed."""
    path = root / METADATA_FILE
    entries, problems = [], []
    # split on '\n' only: str.splitlines would also split inside JSON strings holding U+2028 and friends
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{METADATA_FILE} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{where}: expected a JSON object, got {type(record).__name__}")
            continue
        missing = [f'"{key}"' for key in ("file_name", "text") if key not in record]
        if missing:
            problems.append(f"{where}: no {' or '.join(missing)} field")
            continue
        name, text = record["file_name"], record["text"]
        if not isinstance(name, str):
            problems.append(f'{where}: "file_name" must be a string, got {type(name).__name__}')
            continue
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            problems.append(f'{where}: "text" must be a string or a list of strings, got {json.dumps(text)[:60]}')
            continue
        file, why = _relative(name)
        if why:
            problems.append(f"{where}: {why}")
            continue
        entries.append(_Entry(where, file, tuple(texts)))
    _raise_problems(path, problems)
    return entries


def _read_csv(root: Path) -> list[_Entry]:
    """captions.csv: a header naming file_name and text (other columns ignored), then one caption per row."""
    path = root / CSV_FILE
    entries, problems = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, skipinitialspace=True)  # 'a.png, a cat' and 'file_name, text' both read
            columns = reader.fieldnames
            if not columns:
                raise DataError(f"{path} is empty: it needs a header line naming the columns file_name and text")
            absent = [c for c in ("file_name", "text") if c not in columns]
            if absent:
                raise DataError(f"{path} has no {' or '.join(absent)} column in its header (found: "
                                f"{', '.join(repr(c) for c in columns)}); the first line must name the columns, "
                                "e.g. 'file_name,text'")
            for row in reader:
                where = f"{CSV_FILE} line {reader.line_num}"
                missing = [c for c in ("file_name", "text") if row[c] is None]
                if missing:
                    problems.append(f"{where}: no {' or '.join(missing)} value (the row has too few columns)")
                    continue
                file, why = _relative(row["file_name"])
                if why:
                    problems.append(f"{where}: {why}")
                    continue
                entries.append(_Entry(where, file, (row["text"],)))
    except csv.Error as e:
        raise DataError(f"{path} line {reader.line_num}: not valid CSV ({e})") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    _raise_problems(path, problems)
    return entries


def _read_sidecars(root: Path, sidecars: dict[str, str]) -> list[_Entry]:
    """One caption per non-empty line of each image's .txt file; a .txt file beside no image is an error."""
    orphans = [f"{root / name}: no image named {os.path.splitext(name)[0]}.* beside it"
               for name, image in sidecars.items() if not image]
    if orphans:
        raise DataError(f"{len(orphans)} .txt caption file(s) in {root} have no image (each .txt file holds the "
                        "captions of the image with the same name):" + _bad_list(orphans))
    return [_Entry(name, image, tuple(line for line in _read_text(root / name).split("\n") if line.strip()))
            for name, image in sidecars.items()]


# --- matching captions to images -----------------------------------------------------------------------------

def _clean(text: str) -> str:
    return " ".join(text.split())


def _match(entries: list[_Entry], images: dict[str, Path], root: Path,
           ) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """-> (captions of each captioned image, 'path: no caption' messages, notes on empty captions dropped).
    An entry naming a file that is not one of the images -> DataError listing every such entry."""
    captions: dict[str, list[str]] = defaultdict(list)
    empty: dict[str, list[str]] = defaultdict(list)  # image -> where its empty captions are
    missing = []
    for entry in entries:
        if entry.file not in images:
            path = root / entry.file
            why = ("is not an image file that is read (hidden, or not one of "
                   f"{', '.join(sorted(IMAGE_EXTENSIONS))})" if path.exists() else "does not exist")
            missing.append(f"{entry.where}: {entry.file} {why}")
            continue
        cleaned = [_clean(t) for t in entry.texts]
        captions[entry.file] += [t for t in cleaned if t]
        if not cleaned or not all(cleaned):  # "text": [] or an empty .txt file count as empty too
            empty[entry.file].append(entry.where)
    if missing:
        raise DataError(f"{len(missing)} caption entr{'y names an image' if len(missing) == 1 else 'ies name images'}"
                        f" not in {root}:" + _bad_list(missing))
    uncaptioned, notes = [], []
    for file, path in images.items():
        if captions.get(file):
            notes += [f"{path}: empty caption ignored ({where})" for where in empty.get(file, [])]
        else:
            blank = f" (only empty ones: {', '.join(empty[file])})" if empty.get(file) else ""
            uncaptioned.append(f"{path}: no caption{blank}")
    return {file: texts for file, texts in captions.items() if texts}, uncaptioned, notes


# --- the data set --------------------------------------------------------------------------------------------

def open_captioned_folder(root: str | Path, resolution: int = 64, channels: int = 3, strict: bool = False,
                          workers: int = 0) -> ImageSet:
    """Decode a captioned image folder into memory: images uint8 [N, channels, R, R], labels -1, captions (one list
    of >= 1 caption per image), info.captioned True. The caption source is detected (see describe_caption_sources);
    none, or more than one -> DataError. Images without a caption and bad image files are skipped and listed in
    `skipped`; strict=True raises instead. workers > 0 decodes in threads."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder of images")

    # (1) Find the images and the one caption source.
    images, sidecars, others = _scan(root)
    if not images:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {root}; saw "
                        f"{others + len(sidecars)} other file(s)")
    sources = _sources(root, sidecars)
    if not sources:
        raise DataError(f"{root} holds {len(images)} image(s) but no captions;\n" + describe_caption_sources())
    if len(sources) > 1:
        raise DataError(f"{root} holds several caption sources ({'; '.join(_SOURCE_NAMES[s] for s in sources)}); "
                        "keep one, so that no caption is silently ignored.\n" + describe_caption_sources())

    # (2) Read the captions and match them to the images.
    source = sources[0]
    entries = (_read_metadata(root) if source == METADATA_FILE else _read_csv(root) if source == CSV_FILE
               else _read_sidecars(root, sidecars))
    captions, uncaptioned, notes = _match(entries, images, root)
    if not captions:
        raise DataError(f"none of the {len(images)} images in {root} has a caption (source: "
                        f"{_SOURCE_NAMES[source]}):" + _bad_list(uncaptioned))
    if strict and uncaptioned:
        raise DataError(f"{len(uncaptioned)} of the {len(images)} images in {root} have no caption (strict mode):"
                        + _bad_list(uncaptioned))

    # (3) Decode the captioned images, packing the good ones to the front.
    files = [file for file in images if file in captions]

    def decode(file: str) -> torch.Tensor | str:
        try:
            return load_image(images[file], channels, resolution)
        except BadImageError as e:
            return str(e)

    shape = (channels, resolution, resolution)
    pixels = torch.empty((len(files), *shape), dtype=torch.uint8)
    kept: list[list[str]] = []
    bad: list[str] = []
    for file, result in zip(files, _map(decode, files, workers)):
        if isinstance(result, str):
            bad.append(result)
            continue
        pixels[len(kept)] = result
        kept.append(captions[file])
    if strict and bad:
        raise DataError(f"{len(bad)} of the {len(files)} captioned image files in {root} could not be decoded "
                        "(strict mode):" + _bad_list(bad))
    if not kept:
        raise DataError(f"none of the {len(files)} captioned image files in {root} could be decoded:"
                        + _bad_list(bad))
    info = DataInfo(root.resolve().name or str(root), shape, captioned=True)
    labels = torch.full((len(kept),), -1, dtype=torch.int64)
    return ImageSet(info, pixels[:len(kept)], labels, uncaptioned + bad + notes, captions=kept)
