"""Image-to-image folders (unpaired, paired folders, pix2pix aligned): real files written with PIL into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from belamy.data.base import DataError
from belamy.data.paired import describe_layouts, load_aligned_pair, open_image_pairs

DARK, BRIGHT = 20, 230  # A halves / A files are dark, B bright
R = 16


def save(path: Path, im: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kwargs)
    return path


def gray(value: int, size=(40, 40)) -> Image.Image:
    return Image.new("RGB", size, (value, value, value))


def aligned(a: int = DARK, b: int = BRIGHT, h: int = 40, w: int | None = None) -> Image.Image:
    """A|B side by side: the left half `a`, the right half `b`."""
    w = 2 * h if w is None else w
    x = np.full((h, w, 3), b, np.uint8)
    x[:, : w // 2] = a
    return Image.fromarray(x)


def write_folder(folder: Path, n: int, value: int, ext: str = ".png", start: int = 0) -> list[Path]:
    return [save(folder / f"{i:03d}{ext}", gray(value)) for i in range(start, start + n)]


def near(x: torch.Tensor, value: int, tol: float = 3) -> bool:
    return bool((x.float() - value).abs().max() <= tol)


# --- the three layouts -----------------------------------------------------------------------------------------

def test_unpaired_cyclegan_layout_with_different_counts(tmp_path):
    root = tmp_path / "horse2zebra"
    write_folder(root / "trainA", 6, DARK)
    write_folder(root / "trainB", 4, BRIGHT)
    write_folder(root / "testA", 2, DARK)
    write_folder(root / "testB", 3, BRIGHT)
    data = open_image_pairs(root, resolution=R)
    assert data.info.name == "horse2zebra" and data.info.pairing == "unpaired"
    assert data.info.shape == (3, R, R) and data.info.input_shape == (3, R, R)
    assert data.inputs.shape == (6, 3, R, R) and data.images.shape == (4, 3, R, R)
    assert near(data.inputs, DARK) and near(data.images, BRIGHT)
    assert (data.labels == -1).all() and data.skipped == []
    test = open_image_pairs(root, split="test", resolution=R)
    assert len(test.inputs) == 2 and len(test) == 3


def test_paired_folders_match_stems_across_extensions(tmp_path):
    root = tmp_path / "facades"
    values = [10, 40, 70, 100, 130, 160]
    for i, v in enumerate(values):  # A i has value v, its B 255 - v: a pair's sum is 255 when matched right
        save(root / "A" / f"img{i}.png", gray(v))
        save(root / "B" / f"img{i}.jpg" if i % 2 else root / "B" / f"img{i}.png", gray(255 - v), quality=95)
    data = open_image_pairs(root, resolution=R)
    assert data.info.pairing == "paired" and data.info.name == "facades"
    assert data.inputs.shape == data.images.shape == (6, 3, R, R)
    for i, v in enumerate(values):
        assert near(data.inputs[i], v) and near(data.images[i], 255 - v), i


def test_paired_folders_with_split_subfolders(tmp_path):
    root = tmp_path / "set"
    for split, n in (("train", 4), ("test", 2)):
        write_folder(root / "A" / split, n, DARK)
        write_folder(root / "B" / split, n, BRIGHT, ext=".jpg")
    assert len(open_image_pairs(root, resolution=R)) == 4
    test = open_image_pairs(root, split="test", resolution=R)
    assert len(test) == 2 and len(test.inputs) == 2 and near(test.inputs, DARK) and near(test.images, BRIGHT)
    with pytest.raises(DataError) as e:
        open_image_pairs(root, split="val", resolution=R)
    assert "A/val/" in str(e.value) and "A/test, A/train, B/test, B/train" in str(e.value)


def test_aligned_layout_splits_halves(tmp_path):
    root = tmp_path / "maps"
    for i in range(5):
        save(root / "train" / f"{i}.png", aligned())
    save(root / "train" / "odd.png", aligned(w=81))  # one pixel off 2:1 is accepted
    save(root / "val" / "0.jpg", aligned(), quality=95)
    data = open_image_pairs(root, resolution=R)
    assert data.info.pairing == "paired" and data.info.name == "maps"
    assert data.inputs.shape == data.images.shape == (6, 3, R, R) and data.skipped == []
    assert near(data.inputs, DARK) and near(data.images, BRIGHT)
    val = open_image_pairs(root, split="val", resolution=R)
    assert len(val) == 1 and near(val.inputs, DARK) and near(val.images, BRIGHT)


def test_aligned_files_directly_in_root(tmp_path):
    for i in range(3):
        save(tmp_path / "flat" / f"{i}.png", aligned(a=50 + i, b=200 - i))
    data = open_image_pairs(tmp_path / "flat", resolution=R)
    assert len(data) == 3 and near(data.inputs[2], 52, 1) and near(data.images[2], 198, 1)
    with pytest.raises(DataError, match="split 'train'"):
        open_image_pairs(tmp_path / "flat", split="test", resolution=R)


def test_aligned_half_is_resized_like_a_whole_file(tmp_path):
    """Each half decodes exactly as load_image decodes the same half saved on its own."""
    from belamy.data.folder import load_image

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)
    path = save(tmp_path / "ab.png", Image.fromarray(x))
    a_alone = load_image(save(tmp_path / "a.png", Image.fromarray(x[:, :40])), 3, R)
    b_alone = load_image(save(tmp_path / "b.png", Image.fromarray(x[:, 40:])), 1, R)
    a, b = load_aligned_pair(path, R, channels=1, input_channels=3)
    assert torch.equal(a, a_alone) and torch.equal(b, b_alone)


def test_aligned_exif_orientation_and_16_bit(tmp_path):
    root = tmp_path / "odd"
    stored = aligned().transpose(Image.Transpose.ROTATE_90)  # 40x80 on disk; EXIF 6 turns it back to 80x40
    exif = Image.Exif()
    exif[0x0112] = 6
    save(root / "train" / "rotated.jpg", stored, exif=exif, quality=95)
    deep = np.full((40, 80), BRIGHT * 257, np.uint16)
    deep[:, :40] = DARK * 257
    save(root / "train" / "deep.png", Image.fromarray(deep))
    data = open_image_pairs(root, resolution=R, channels=1)
    assert data.skipped == [] and data.images.shape == (2, 1, R, R)
    assert near(data.inputs, DARK) and near(data.images, BRIGHT)


def test_input_channels_differ_from_channels(tmp_path):
    root = tmp_path / "edges"
    write_folder(root / "A", 3, DARK)
    write_folder(root / "B", 3, BRIGHT)
    data = open_image_pairs(root, resolution=R, channels=3, input_channels=1)
    assert data.info.input_shape == (1, R, R) and data.info.shape == (3, R, R)
    assert data.inputs.shape == (3, 1, R, R) and data.images.shape == (3, 3, R, R)
    save(root / "train" / "x.png", aligned())  # also in the aligned layout (after removing A/ B/)
    for side in "AB":
        for p in (root / side).iterdir():
            p.unlink()
        (root / side).rmdir()
    data = open_image_pairs(root, resolution=R, channels=3, input_channels=1)
    assert data.inputs.shape == (1, 1, R, R) and data.images.shape == (1, 3, R, R)


def test_workers_give_the_same_result(tmp_path):
    root = tmp_path / "w"
    for i in range(6):
        save(root / "train" / f"{i}.png", aligned(a=10 * i, b=255 - 10 * i))
    serial, threaded = open_image_pairs(root, resolution=R), open_image_pairs(root, resolution=R, workers=2)
    assert torch.equal(serial.inputs, threaded.inputs) and torch.equal(serial.images, threaded.images)


# --- bad files -------------------------------------------------------------------------------------------------

def test_aligned_wrong_aspect_is_skipped_with_reason_and_strict_raises(tmp_path):
    root = tmp_path / "set"
    for i in range(4):
        save(root / "train" / f"{i}.png", aligned())
    square = save(root / "train" / "square.png", gray(DARK))
    data = open_image_pairs(root, resolution=R)
    assert len(data) == 4
    assert data.skipped == [f"{square}: expected A|B side by side: width 2x height, got 40x40"]
    with pytest.raises(DataError) as e:
        open_image_pairs(root, resolution=R, strict=True)
    assert "strict" in str(e.value) and "square.png: expected A|B" in str(e.value)


def test_truncated_and_corrupt_files_drop_their_pair(tmp_path):
    root = tmp_path / "set"
    write_folder(root / "A", 6, DARK)
    b = write_folder(root / "B", 6, BRIGHT)
    b[1].write_bytes(b[1].read_bytes()[:-30])
    b[4].write_bytes(b"not an image at all")
    data = open_image_pairs(root, resolution=R)
    assert len(data) == 4 and len(data.inputs) == 4
    assert len(data.skipped) == 2
    assert data.skipped[0].startswith(f"{b[1]}: truncated") and data.skipped[1].startswith(f"{b[4]}: not an image")
    with pytest.raises(DataError, match="2 bad image file"):
        open_image_pairs(root, resolution=R, strict=True)


def test_corrupt_unpaired_file_and_all_bad(tmp_path):
    root = tmp_path / "cg"
    write_folder(root / "trainA", 3, DARK)
    bs = write_folder(root / "trainB", 3, BRIGHT)
    bs[0].write_bytes(b"garbage")
    data = open_image_pairs(root, resolution=R)
    assert len(data.inputs) == 3 and len(data) == 2 and data.skipped[0].startswith(str(bs[0]))
    for p in bs:
        p.write_bytes(b"")
    with pytest.raises(DataError, match="none of the 3 image files in .*trainB"):
        open_image_pairs(root, resolution=R)


# --- layout errors ---------------------------------------------------------------------------------------------

def test_mismatched_names_are_listed(tmp_path):
    root = tmp_path / "set"
    for name in ("a", "b", "c"):
        save(root / "A" / f"{name}.png", gray(DARK))
    for name in ("a", "b", "d"):
        save(root / "B" / f"{name}.png", gray(BRIGHT))
    with pytest.raises(DataError) as e:
        open_image_pairs(root, resolution=R)
    msg = str(e.value)
    assert "c.png" in msg and "d.png" in msg and str(root / "A") in msg and str(root / "B") in msg
    assert "a.png" not in msg


def test_many_mismatched_names_are_truncated(tmp_path):
    root = tmp_path / "set"
    (root / "B").mkdir(parents=True)
    save(root / "B" / "only.png", gray(BRIGHT))
    for i in range(25):  # never decoded: matching happens first, so empty files will do
        (root / "A").mkdir(exist_ok=True)
        (root / "A" / f"{i:02d}.png").write_bytes(b"")
    with pytest.raises(DataError, match="and 6 more"):
        open_image_pairs(root, resolution=R)


def test_missing_split_names_what_exists(tmp_path):
    root = tmp_path / "cg"
    write_folder(root / "trainA", 2, DARK)
    write_folder(root / "trainB", 2, BRIGHT)
    with pytest.raises(DataError) as e:
        open_image_pairs(root, split="test", resolution=R)
    assert "no testA/ and testB/ in" in str(e.value) and "found: trainA, trainB" in str(e.value)
    aligned_root = tmp_path / "al"
    save(aligned_root / "train" / "0.png", aligned())
    with pytest.raises(DataError, match=r"no test/ in .*found: train"):
        open_image_pairs(aligned_root, split="test", resolution=R)


def test_ambiguous_empty_and_unknown_layouts(tmp_path):
    both = tmp_path / "both"
    for d in ("trainA", "trainB", "A", "B"):
        write_folder(both / d, 1, DARK)
    with pytest.raises(DataError, match="mixes image-to-image layouts") as e:
        open_image_pairs(both, resolution=R)
    assert "trainA" in str(e.value) and "paired folders: A, B" in str(e.value)

    empty = tmp_path / "empty"
    (empty / "trainA").mkdir(parents=True)
    (empty / "trainB").mkdir()
    with pytest.raises(DataError, match=r"no image files .* found in .*trainA"):
        open_image_pairs(empty, resolution=R)

    other = tmp_path / "other"
    (other / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no image-to-image layout") as e:
        open_image_pairs(other, resolution=R)
    assert describe_layouts() in str(e.value)

    with pytest.raises(DataError, match="not found"):
        open_image_pairs(tmp_path / "missing")
    with pytest.raises(ValueError, match="input_channels"):
        open_image_pairs(both, input_channels=2)


def test_describe_layouts_names_all_three():
    text = describe_layouts()
    assert "trainA" in text and "A/train" in text and "side by side" in text
