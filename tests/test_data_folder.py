"""Image folders as training sets: real files written with PIL into tmp_path."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from belamy.data.base import DataError, ImageSet
from belamy.data.folder import (IMAGE_EXTENSIONS, BadImageError, FolderImages, collate_images, decode_folder,
                                estimate_bytes, load_image, open_folder, scan_folder, verify_folder)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def save(path: Path, im: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kwargs)
    return path


def mode_of(path: Path) -> str:
    with Image.open(path) as im:
        return im.mode


def solid(color=RED, size=(16, 16)) -> Image.Image:
    return Image.new("RGB", size, color)


def stripes(widths_colors: list[tuple[int, tuple[int, int, int]]], height: int) -> Image.Image:
    """Vertical stripes, left to right: [(width, colour), ...]."""
    a = np.concatenate([np.full((height, w, 3), c, np.uint8) for w, c in widths_colors], axis=1)
    return Image.fromarray(a)


def noise_bytes(fmt: str, **kwargs) -> bytes:
    a = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt, **kwargs)
    return buf.getvalue()


def write_bad_files(folder: Path) -> dict[str, Path]:
    """One file of each bad kind, keyed by what should be in the reason."""
    folder.mkdir(parents=True, exist_ok=True)
    png, jpg = noise_bytes("PNG"), noise_bytes("JPEG", quality=90)
    files = {
        "empty": folder / "zero.png",
        "truncated": folder / "cut.png",
        "truncated ": folder / "cut.jpg",  # second truncated kind; the key is only a label
        "not an image": folder / "text.png",
        "too small": folder / "tiny.png",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(png[: len(png) // 2])
    files["truncated "].write_bytes(jpg[: len(jpg) // 2])
    files["not an image"].write_text("this is not a picture\n")
    solid(RED, (4, 4)).save(files["too small"])
    return files


# --- scan_folder -----------------------------------------------------------------------------------------------

def test_scan_flat_folder_is_unlabeled_sorted_and_skips_hidden(tmp_path):
    for name in ["b.png", "a.jpg", "C.JPEG", "d.WebP", "e.bmp"]:
        save(tmp_path / name, solid())
    save(tmp_path / ".hidden.png", solid())
    (tmp_path / "notes.txt").write_text("x")
    paths, labels, classes = scan_folder(tmp_path)
    assert [p.name for p in paths] == ["C.JPEG", "a.jpg", "b.png", "d.WebP", "e.bmp"]
    assert labels == [-1] * 5 and classes == ()
    assert {".png", ".jpg", ".jpeg", ".webp", ".bmp"} == IMAGE_EXTENSIONS


def test_scan_class_folders_assigns_labels_in_sorted_name_order(tmp_path):
    save(tmp_path / "dog" / "x.png", solid())
    save(tmp_path / "dog" / "deep" / "y.png", solid())  # nested: still a dog
    save(tmp_path / "cat" / "2.png", solid())
    save(tmp_path / "cat" / "1.png", solid())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")  # not a class
    save(tmp_path / ".git" / "z.png", solid())  # hidden folder: ignored
    paths, labels, classes = scan_folder(str(tmp_path))
    assert classes == ("cat", "dog")
    rel = [p.relative_to(tmp_path).as_posix() for p in paths]
    assert rel == ["cat/1.png", "cat/2.png", "dog/deep/y.png", "dog/x.png"]
    assert labels == [0, 0, 1, 1]


def test_scan_rejects_images_mixed_with_class_folders(tmp_path):
    save(tmp_path / "cat" / "1.png", solid())
    save(tmp_path / "loose.png", solid())
    with pytest.raises(DataError, match="mixes 1 image file") as err:
        scan_folder(tmp_path)
    assert "loose.png" in str(err.value) and "cat" in str(err.value)


def test_scan_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="not found") as err:
        scan_folder(missing)
    assert str(missing) in str(err.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    (empty / "b.csv").write_text("y")
    with pytest.raises(DataError, match="saw 2 other file") as err:
        scan_folder(empty)
    assert str(empty) in str(err.value)

    a_file = save(tmp_path / "one.png", solid())
    with pytest.raises(DataError, match="is a file") as err:
        scan_folder(a_file)
    assert str(a_file) in str(err.value)


# --- load_image: modes ----------------------------------------------------------------------------------------

def test_rgba_and_la_transparency_become_white(tmp_path):
    a = np.zeros((16, 16, 4), np.uint8)
    a[:, :8] = (255, 0, 0, 0)  # fully transparent red: must not leak as red (or black)
    a[:, 8:] = (0, 0, 255, 255)
    rgba = save(tmp_path / "rgba.png", Image.fromarray(a, "RGBA"))
    x = load_image(rgba, 3, 16)
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16)
    assert x[:, :, :8].eq(255).all()  # white
    assert x[:, :, 8:].tolist() == torch.tensor(BLUE, dtype=torch.uint8).view(3, 1, 1).expand(3, 16, 8).tolist()
    assert load_image(rgba, 1, 16)[0, :, :8].eq(255).all()

    la = np.zeros((16, 16, 2), np.uint8)
    la[:, :8] = (0, 0)  # transparent black -> white
    la[:, 8:] = (40, 255)  # opaque dark grey stays 40
    y = load_image(save(tmp_path / "la.png", Image.fromarray(la, "LA")), 1, 16)
    assert y[0, :, :8].eq(255).all() and y[0, :, 8:].eq(40).all()


def test_palette_with_and_without_transparency(tmp_path):
    p = Image.new("P", (16, 16), 0)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    p.paste(1, (8, 0, 16, 16))
    clear = load_image(save(tmp_path / "pt.png", p, transparency=0), 3, 16)
    assert clear[:, :, :8].eq(255).all()  # index 0 is transparent -> white, not palette black
    assert clear[:, 0, 12].tolist() == [10, 200, 30]
    opaque = load_image(save(tmp_path / "p.png", p), 3, 16)
    assert opaque[:, 0, 0].tolist() == [0, 0, 0] and opaque[:, 0, 12].tolist() == [10, 200, 30]


@pytest.mark.parametrize("mode, fmt", [("I;16", "PNG"), ("I;16B", "TIFF"), ("I", "TIFF")])
def test_16bit_grayscale_is_scaled_not_clipped(tmp_path, mode, fmt):
    a = np.zeros((16, 16), np.uint16)
    a[:8] = 65535
    a[8:, :8] = 32896
    a[8:, 8:] = 1000  # clipping would make this 255
    im = Image.frombytes(mode, (16, 16), a.astype({"I;16": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]).tobytes())
    path = save(tmp_path / f"g16.{fmt.lower()}", im, format=fmt)  # load_image goes by content, not suffix
    assert mode_of(path) == mode  # really that kind of file
    x = load_image(path, 1, 16)[0]
    assert x[:8].eq(255).all() and x[8:, :8].eq(128).all() and x[8:, 8:].eq(4).all()
    rgb = load_image(path, 3, 16)
    assert rgb[:, 12, 2].tolist() == [128, 128, 128]


def test_32bit_grayscale_beyond_16_bits_uses_its_own_range(tmp_path):
    a = np.zeros((16, 16), np.int32)
    a[:, 8:] = 1_000_000
    path = save(tmp_path / "g32.tiff", Image.fromarray(a, "I"))
    x = load_image(path, 1, 16)[0]
    assert x[:, :8].eq(0).all() and x[:, 8:].eq(255).all()


def test_1bit_and_cmyk(tmp_path):
    bw = Image.new("1", (16, 16), 0)
    bw.paste(1, (0, 8, 16, 16))
    path = save(tmp_path / "bw.png", bw)
    x = load_image(path, 1, 16)[0]
    assert x[:8].eq(0).all() and x[8:].eq(255).all()
    assert load_image(path, 3, 16)[:, 12, 3].tolist() == [255, 255, 255]

    cmyk = save(tmp_path / "c.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)))  # pure red in CMYK
    assert mode_of(cmyk) == "CMYK"
    r, g, b = load_image(cmyk, 3, 16)[:, 8, 8].tolist()
    assert r > 230 and g < 25 and b < 25


def test_exif_orientation_is_applied(tmp_path):
    # Stored 40x20: left half red, right half blue. Orientation 6 = display rotated 90 degrees clockwise, so the
    # stored left half is shown on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(tmp_path / "rot.jpg", stripes([(20, RED), (20, BLUE)], 20), exif=exif, quality=95)
    x = load_image(path, 3, 16).int()
    top, bottom = x[:, 1, 8], x[:, 14, 8]
    assert top[0] > 200 and top[2] < 50  # red on top
    assert bottom[2] > 200 and bottom[0] < 50  # blue below
    left, right = x[:, 8, 1], x[:, 8, 14]
    assert (left - right).abs().max() < 40  # no left/right split: it was rotated


# --- load_image: resize and centre crop ------------------------------------------------------------------------

@pytest.mark.parametrize("tall", [False, True])
def test_non_square_image_is_center_cropped(tmp_path, tall):
    # 60x20: blue | red | green | blue with the red|green pair exactly in the centred 20x20 square.
    im = stripes([(20, BLUE), (10, RED), (10, GREEN), (20, BLUE)], 20)
    if tall:
        im = im.transpose(Image.Transpose.ROTATE_270)  # 20x60, the same stripes running top to bottom
    x = load_image(save(tmp_path / "wide.png", im), 3, 16).int()
    if tall:
        x = x.transpose(1, 2)
    assert x.shape == (3, 16, 16)
    assert x[2].max() < 10  # no blue at all: the side stripes were cropped away
    assert x[0, :, :6].min() > 245 and x[1, :, :6].max() < 10  # left part red
    assert x[1, :, 10:].min() > 245 and x[0, :, 10:].max() < 10  # right part green


def test_resize_shapes_up_and_down(tmp_path):
    big = save(tmp_path / "big.png", solid(GREEN, (300, 100)))
    small = save(tmp_path / "small.png", solid(GREEN, (8, 12)))  # 8 is the smallest accepted side
    for path in (big, small):
        for c, res in [(3, 32), (1, 24)]:
            x = load_image(path, c, res)
            assert x.shape == (c, res, res) and x.dtype == torch.uint8 and x.is_contiguous()
    assert load_image(big, 3, 32)[:, 5, 5].tolist() == list(GREEN)
    assert load_image(small, 1, 24)[0].eq(150).all()  # luma of pure green: 0.587 * 255


# --- bad files ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["empty", "truncated", "truncated ", "not an image", "too small"])
def test_bad_files_raise_bad_image_error_naming_the_file(tmp_path, kind):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(BadImageError) as err:
        load_image(path, 3, 16)
    assert str(err.value).startswith(f"{path}: ")
    assert kind.strip() in err.value.reason
    assert err.value.path == str(path) and isinstance(err.value, DataError)


def test_truncation_is_caught_even_when_pil_is_told_to_accept_it(tmp_path, monkeypatch):
    files = write_bad_files(tmp_path)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some other library might do
    for key in ("truncated", "truncated "):
        with pytest.raises(BadImageError, match="truncated"):
            load_image(files[key], 3, 16)
    good = tmp_path / "good.jpg"
    good.write_bytes(noise_bytes("JPEG", quality=90))
    assert load_image(good, 3, 16).shape == (3, 16, 16)


def test_bad_image_error_pickles():
    err = pickle.loads(pickle.dumps(BadImageError("/x/a.png", "empty file (0 bytes)")))
    assert (err.path, err.reason, str(err)) == ("/x/a.png", "empty file (0 bytes)", "/x/a.png: empty file (0 bytes)")


# --- data sets ------------------------------------------------------------------------------------------------

def make_classes(root: Path) -> None:
    save(root / "a" / "0.png", solid(RED, (20, 16)))
    save(root / "a" / "1.png", solid(GREEN))
    save(root / "b" / "0.jpg", solid(BLUE), quality=95)


def test_folder_images_items_info_and_bad_files(tmp_path):
    make_classes(tmp_path / "shapes")
    bad = write_bad_files(tmp_path / "shapes" / "b")
    ds = FolderImages(tmp_path / "shapes", channels=3, resolution=8)
    assert ds.info.name == "shapes" and ds.info.shape == (3, 8, 8)
    assert ds.info.num_classes == 2 and ds.info.class_names == ("a", "b")
    assert len(ds) == 3 + len(bad)
    x, y = ds[0]
    assert y == 0 and x.shape == (3, 8, 8) and x[:, 4, 4].tolist() == list(RED)
    results = {ds.paths[i].name: ds[i] for i in range(len(ds))}
    for path in bad.values():
        img, msg = results[path.name]
        assert img is None and msg.startswith(f"{path}: ")
    assert FolderImages(tmp_path / "shapes", 1, 8, name="mine").info.name == "mine"


def test_verify_and_decode_skip_bad_files(tmp_path):
    make_classes(tmp_path)
    bad = write_bad_files(tmp_path / "b")
    ds = FolderImages(tmp_path, 3, 8)
    problems = verify_folder(ds)
    assert sorted(m.split(": ")[0] for m in problems) == sorted(str(p) for p in bad.values())

    data = decode_folder(ds)
    assert isinstance(data, ImageSet) and len(data) == 3 and data.images.shape == (3, 3, 8, 8)
    assert data.labels.tolist() == [0, 0, 1]
    assert data.images[:2, :, 4, 4].tolist() == [list(RED), list(GREEN)]
    r, g, b = data.images[2, :, 4, 4].tolist()  # JPEG: blue, give or take rounding
    assert r < 8 and g < 8 and b > 247
    assert sorted(data.skipped) == sorted(problems)

    threaded = decode_folder(ds, workers=3)  # same result whatever the thread count
    assert torch.equal(threaded.images, data.images) and torch.equal(threaded.labels, data.labels)
    assert threaded.skipped == data.skipped


def test_decode_folder_all_bad_raises(tmp_path):
    write_bad_files(tmp_path)
    with pytest.raises(DataError, match="none of the 5 image files") as err:
        decode_folder(FolderImages(tmp_path, 3, 8))
    assert "zero.png" in str(err.value)


def test_open_folder_cache_choice_and_strict(tmp_path):
    make_classes(tmp_path)
    ds = open_folder(tmp_path, 3, 8, cache_limit_bytes=0)
    assert isinstance(ds, FolderImages) and estimate_bytes(ds) == 3 * 3 * 8 * 8
    assert isinstance(open_folder(tmp_path, 3, 8), ImageSet)
    assert isinstance(open_folder(tmp_path, 3, 8, cache=False, strict=True), FolderImages)

    bad = write_bad_files(tmp_path / "b")
    lenient = open_folder(tmp_path, 3, 8)
    assert len(lenient) == 3 and len(lenient.skipped) == len(bad)
    for cache in (True, False):
        with pytest.raises(DataError, match="5 of 8 image files") as err:
            open_folder(tmp_path, 3, 8, cache=cache, strict=True)
        assert all(str(p) in str(err.value) for p in bad.values())


def test_open_folder_strict_lists_at_most_20(tmp_path):
    save(tmp_path / "good.png", solid())
    for i in range(23):
        (tmp_path / f"bad{i:02d}.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        open_folder(tmp_path, 3, 8, strict=True)
    msg = str(err.value)
    assert "23 of 24" in msg and "and 3 more" in msg
    assert "bad19.png" in msg and "bad20.png" not in msg


def test_dataloader_yields_good_images_and_bad_messages(tmp_path):
    for i, color in enumerate([RED, GREEN, BLUE]):
        save(tmp_path / f"{i}.png", solid(color))
    (tmp_path / "3.png").write_text("not an image")
    loader = torch.utils.data.DataLoader(FolderImages(tmp_path, 3, 8), batch_size=4, num_workers=0,
                                         collate_fn=collate_images)
    (images, labels, bad), = list(loader)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 8, 8)
    assert images[:, :, 0, 0].tolist() == [list(RED), list(GREEN), list(BLUE)]
    assert labels.dtype == torch.int64 and labels.tolist() == [-1, -1, -1]
    assert len(bad) == 1 and bad[0].startswith(str(tmp_path / "3.png") + ": ")


def test_collate_all_bad():
    images, labels, bad = collate_images([(None, "a.png: empty"), (None, "b.png: empty")])
    assert images.shape == (0,) and images.dtype == torch.uint8
    assert labels.shape == (0,) and labels.dtype == torch.int64
    assert bad == ["a.png: empty", "b.png: empty"]
