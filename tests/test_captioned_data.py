"""Captioned image folders (metadata.jsonl, captions.csv, .txt beside each image): real files written into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from belamy.data.base import DataError
from belamy.data.captioned import describe_caption_sources, is_captioned_folder, open_captioned_folder

R = 8


def image(path: Path, value: int = 128, size: tuple[int, int] = (12, 12)) -> Path:
    """A flat gray image of `value`: the tests tell images apart by their pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(root: Path, *records) -> Path:
    return write(root / "metadata.jsonl", "".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                                                  for r in records))


def value_of(x: torch.Tensor) -> int:
    """The gray value of a flat image (checks captions stay with their image)."""
    assert int(x.max()) - int(x.min()) <= 2
    return int(x.float().mean().round())


def by_value(data) -> dict[int, list[str]]:
    return {value_of(x): caps for x, caps in zip(data.images, data.captions)}


# --- the three caption sources -------------------------------------------------------------------------------

def test_metadata_jsonl_with_lists_repeated_lines_and_subfolders(tmp_path):
    root = tmp_path / "birds"
    image(root / "a.png", 10)
    image(root / "train" / "b.jpg", 100)
    image(root / "train" / "deep" / "c.png", 200)
    jsonl(root,
          {"file_name": "a.png", "text": "  a   small\tbird "},
          "",  # blank lines are allowed
          {"file_name": "train/b.jpg", "text": ["first", "second"], "extra": 1},
          {"file_name": "./train/deep/c.png", "text": "one"},
          {"file_name": "train/deep/c.png", "text": "two"},
          {"file_name": "a.png", "text": "another"})
    assert is_captioned_folder(root)
    data = open_captioned_folder(root, resolution=R)
    assert data.info.name == "birds" and data.info.captioned and data.info.shape == (3, R, R)
    assert data.images.shape == (3, 3, R, R) and data.images.dtype == torch.uint8
    assert (data.labels == -1).all() and data.skipped == []
    # sorted file order: a.png, train/b.jpg, train/deep/c.png; captions whitespace-collapsed, in file order
    assert data.captions == [["a small bird", "another"], ["first", "second"], ["one", "two"]]
    assert by_value(data) == {10: ["a small bird", "another"], 100: ["first", "second"], 200: ["one", "two"]}


def test_captions_csv_with_several_rows_and_extra_columns(tmp_path):
    root = tmp_path / "flowers"
    image(root / "x.png", 50)
    image(root / "sub" / "y.png", 150)
    write(root / "captions.csv", 'file_name, text, score\n'
                                 'x.png, "a red, round flower", 3\n'
                                 'sub/y.png,a tall stem,1\n'
                                 'x.png,"petals\nin the rain",2\n')
    assert is_captioned_folder(root)
    data = open_captioned_folder(root, resolution=R)
    assert by_value(data) == {50: ["a red, round flower", "petals in the rain"], 150: ["a tall stem"]}
    assert data.info.name == "flowers" and data.skipped == []


def test_txt_beside_each_image(tmp_path):
    root = tmp_path / "cats"
    image(root / "a.png", 30)
    write(root / "a.txt", "a cat\n\n   \n  a  sleeping cat  \n")
    image(root / "more" / "b.webp", 220)
    write(root / "more" / "b.txt", "one line only")
    assert is_captioned_folder(root)
    data = open_captioned_folder(root, resolution=R, channels=1)
    assert data.images.shape == (2, 1, R, R)
    assert by_value(data) == {30: ["a cat", "a sleeping cat"], 220: ["one line only"]}


def test_workers_give_the_same_set(tmp_path):
    root = tmp_path / "set"
    for i in range(6):
        image(root / f"{i}.png", 20 + 30 * i)
        write(root / f"{i}.txt", f"caption {i}")
    image(root / "bad.png").write_bytes(b"not an image")
    write(root / "bad.txt", "bad")
    one, two = open_captioned_folder(root, resolution=R), open_captioned_folder(root, resolution=R, workers=2)
    assert torch.equal(one.images, two.images) and one.captions == two.captions and one.skipped == two.skipped
    assert one.captions == [[f"caption {i}"] for i in range(6)]


def test_is_captioned_folder_is_false_without_a_source(tmp_path):
    assert not is_captioned_folder(tmp_path / "missing")
    image(tmp_path / "plain" / "a.png")
    write(tmp_path / "plain" / "README.txt", "not a caption: no image is named README")
    assert not is_captioned_folder(tmp_path / "plain")
    assert not is_captioned_folder(tmp_path / "plain" / "a.png")


# --- detection errors ----------------------------------------------------------------------------------------

def test_several_sources_are_an_error_naming_them(tmp_path):
    image(tmp_path / "a.png")
    jsonl(tmp_path, {"file_name": "a.png", "text": "a"})
    write(tmp_path / "a.txt", "a")
    with pytest.raises(DataError, match=r"several caption sources.*metadata\.jsonl.*\.txt caption files"):
        open_captioned_folder(tmp_path, resolution=R)
    write(tmp_path / "captions.csv", "file_name,text\na.png,a\n")
    with pytest.raises(DataError, match=r"metadata\.jsonl.*captions\.csv.*\.txt"):
        open_captioned_folder(tmp_path, resolution=R)


def test_no_source_and_no_images(tmp_path):
    image(tmp_path / "a" / "x.png")
    with pytest.raises(DataError, match="no captions") as err:
        open_captioned_folder(tmp_path / "a", resolution=R)
    assert describe_caption_sources() in str(err.value)
    jsonl(tmp_path / "b", {"file_name": "x.png", "text": "a caption without its image"})
    with pytest.raises(DataError, match=r"no image files .* found in .*b; saw 1 other file"):
        open_captioned_folder(tmp_path / "b", resolution=R)
    with pytest.raises(DataError, match="not found"):
        open_captioned_folder(tmp_path / "nothing", resolution=R)


# --- bad caption files ---------------------------------------------------------------------------------------

def test_bad_json_lines_and_missing_fields_name_their_line(tmp_path):
    image(tmp_path / "a.png")
    jsonl(tmp_path, {"file_name": "a.png", "text": "fine"}, "{not json", {"text": "where"},
          {"file_name": "a.png"}, {"file_name": "a.png", "text": 3}, '["a list"]')
    with pytest.raises(DataError) as err:
        open_captioned_folder(tmp_path, resolution=R)
    msg = str(err.value)
    assert "5 bad line(s)" in msg
    assert "metadata.jsonl line 2: not valid JSON" in msg
    assert 'metadata.jsonl line 3: no "file_name" field' in msg
    assert 'metadata.jsonl line 4: no "text" field' in msg
    assert 'metadata.jsonl line 5: "text" must be a string or a list of strings' in msg
    assert "metadata.jsonl line 6: expected a JSON object" in msg


def test_csv_needs_its_header_and_full_rows(tmp_path):
    image(tmp_path / "a.png")
    write(tmp_path / "captions.csv", "a.png,a caption\n")
    with pytest.raises(DataError, match=r"no file_name or text column .*found: 'a.png', 'a caption'"):
        open_captioned_folder(tmp_path, resolution=R)
    write(tmp_path / "captions.csv", "file_name,text\na.png,fine\na.png\n")
    with pytest.raises(DataError, match=r"captions\.csv line 3: no text value"):
        open_captioned_folder(tmp_path, resolution=R)
    write(tmp_path / "captions.csv", "")
    with pytest.raises(DataError, match="empty"):
        open_captioned_folder(tmp_path, resolution=R)


@pytest.mark.parametrize("name", ["../outside.png", "sub/../../outside.png", "/abs/outside.png",
                                  "C:\\outside.png", "..\\outside.png"])
def test_paths_may_not_leave_the_folder(tmp_path, name):
    image(tmp_path / "outside.png")  # exists: the refusal must not depend on the file being missing
    root = tmp_path / "root"
    image(root / "a.png")
    jsonl(root, {"file_name": "a.png", "text": "fine"}, {"file_name": name, "text": "escape"})
    with pytest.raises(DataError, match=r"metadata\.jsonl line 2: .*(relative to the folder|leaves the folder)"):
        open_captioned_folder(root, resolution=R)
    (root / "metadata.jsonl").unlink()
    write(root / "captions.csv", f'file_name,text\na.png,fine\n"{name}",escape\n')
    with pytest.raises(DataError, match=r"captions\.csv line 3: .*(relative to the folder|leaves the folder)"):
        open_captioned_folder(root, resolution=R)


def test_captions_of_missing_images_are_listed(tmp_path):
    image(tmp_path / "a.png")
    write(tmp_path / "notes.dat", "x")
    records = [{"file_name": "a.png", "text": "fine"}, {"file_name": "notes.dat", "text": "not an image"}]
    records += [{"file_name": f"gone{i:02d}.png", "text": "lost"} for i in range(22)]
    jsonl(tmp_path, *records)
    with pytest.raises(DataError) as err:
        open_captioned_folder(tmp_path, resolution=R)
    msg = str(err.value)
    assert "23 caption entries name images not in" in msg
    assert "metadata.jsonl line 2: notes.dat is not an image file" in msg
    assert "metadata.jsonl line 3: gone00.png does not exist" in msg
    assert "and 3 more" in msg and "gone21" not in msg


def test_txt_without_image_and_txt_beside_two_images(tmp_path):
    image(tmp_path / "a" / "x.png")
    write(tmp_path / "a" / "x.txt", "fine")
    write(tmp_path / "a" / "orphan.txt", "its image was deleted")
    with pytest.raises(DataError, match=r"(?s)1 \.txt caption file.*orphan\.txt: no image named orphan\.\*"):
        open_captioned_folder(tmp_path / "a", resolution=R)
    image(tmp_path / "b" / "x.png")
    image(tmp_path / "b" / "x.jpg")
    write(tmp_path / "b" / "x.txt", "which one?")
    with pytest.raises(DataError, match=r"x\.txt sits beside 2 images .*x\.jpg, x\.png"):
        open_captioned_folder(tmp_path / "b", resolution=R)


# --- images without captions, empty captions, bad images: lenient vs strict ----------------------------------

def test_uncaptioned_images_skipped_or_strict_error(tmp_path):
    image(tmp_path / "a.png", 40)
    image(tmp_path / "b.png", 90)
    image(tmp_path / "sub" / "c.png", 140)
    jsonl(tmp_path, {"file_name": "a.png", "text": "captioned"})
    data = open_captioned_folder(tmp_path, resolution=R)
    assert by_value(data) == {40: ["captioned"]}
    assert data.skipped == [f"{tmp_path / 'b.png'}: no caption", f"{tmp_path / 'sub' / 'c.png'}: no caption"]
    with pytest.raises(DataError, match=r"2 of the 3 images .* have no caption \(strict mode\)") as err:
        open_captioned_folder(tmp_path, resolution=R, strict=True)
    assert "b.png: no caption" in str(err.value) and "c.png: no caption" in str(err.value)


def test_no_captioned_image_at_all_is_an_error(tmp_path):
    image(tmp_path / "a.png")
    image(tmp_path / "b.png")
    write(tmp_path / "a.txt", "\n  \n")  # present but empty
    with pytest.raises(DataError, match=r"none of the 2 images .* has a caption") as err:
        open_captioned_folder(tmp_path, resolution=R)
    assert "a.png: no caption (only empty ones: a.txt)" in str(err.value)


def test_empty_captions_are_dropped_with_a_note(tmp_path):
    image(tmp_path / "a.png", 40)
    image(tmp_path / "b.png", 90)
    jsonl(tmp_path, {"file_name": "a.png", "text": ["kept", "  ", ""]}, {"file_name": "a.png", "text": " \t"},
          {"file_name": "b.png", "text": "   "}, {"file_name": "b.png", "text": []})
    data = open_captioned_folder(tmp_path, resolution=R)
    assert data.captions == [["kept"]]
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert data.skipped == [f"{b}: no caption (only empty ones: metadata.jsonl line 3, metadata.jsonl line 4)",
                            f"{a}: empty caption ignored (metadata.jsonl line 1)",
                            f"{a}: empty caption ignored (metadata.jsonl line 2)"]
    with pytest.raises(DataError, match=r"1 of the 2 images .* no caption \(strict mode\)"):
        open_captioned_folder(tmp_path, resolution=R, strict=True)
    (tmp_path / "b.png").unlink()
    jsonl(tmp_path, {"file_name": "a.png", "text": ["kept", ""]})
    strict = open_captioned_folder(tmp_path, resolution=R, strict=True)  # a dropped caption loses no image
    assert strict.captions == [["kept"]] and len(strict.skipped) == 1


def test_corrupt_image_skipped_or_strict_error(tmp_path):
    image(tmp_path / "good.png", 60)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    image(tmp_path / "tiny.png", size=(4, 4))
    write(tmp_path / "captions.csv", "file_name,text\ngood.png,good\nbroken.png,broken\ntiny.png,tiny\n")
    data = open_captioned_folder(tmp_path, resolution=R)
    assert by_value(data) == {60: ["good"]} and len(data) == 1
    assert len(data.skipped) == 2
    assert data.skipped[0].startswith(f"{tmp_path / 'broken.png'}: ")
    assert data.skipped[1].startswith(f"{tmp_path / 'tiny.png'}: too small")
    with pytest.raises(DataError, match=r"2 of the 3 captioned image files .* \(strict mode\)"):
        open_captioned_folder(tmp_path, resolution=R, strict=True)
    (tmp_path / "good.png").unlink()
    write(tmp_path / "captions.csv", "file_name,text\nbroken.png,broken\ntiny.png,tiny\n")
    with pytest.raises(DataError, match="none of the 2 captioned image files .* could be decoded"):
        open_captioned_folder(tmp_path, resolution=R)


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        open_captioned_folder(".", channels=2)
    with pytest.raises(ValueError, match="resolution"):
        open_captioned_folder(".", resolution=0)
