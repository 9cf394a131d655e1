"""The built-in `shapes` set: determinism, shapes, truthful and varied captions, the held-out split, and pixels that
show what the attributes say."""

import math
import random
import re

import numpy as np
import pytest
import torch

from belamy.data import DATASETS, DataError, ImageSet
from belamy.data import shapes as S


@pytest.fixture(scope="module")
def train() -> ImageSet:
    return S.render_scenes(2000, 32, seed=7)  # also the "2,000 images at 32px complete" check


@pytest.fixture(scope="module")
def heldout() -> ImageSet:
    return S.render_scenes(300, 32, seed=8, split="heldout")


def _mentions(caption: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", caption) is not None


def test_same_seed_same_bytes_other_seed_differs_and_smaller_sets_are_prefixes():
    a, b = S.render_scenes(40, 32, seed=3), S.render_scenes(40, 32, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.captions == b.captions and a.attributes == b.attributes
    c = S.render_scenes(40, 32, seed=4)
    assert not torch.equal(a.images, c.images) and a.captions != c.captions
    prefix = S.render_scenes(10, 32, seed=3)  # scene i depends on (seed, i) only
    assert torch.equal(prefix.images, a.images[:10]) and prefix.captions == a.captions[:10]


@pytest.mark.parametrize("resolution", [32, 64])
def test_shapes_dtypes_and_info(resolution):
    data = S.render_scenes(50, resolution, seed=1)
    assert data.images.shape == (50, 3, resolution, resolution) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64 and 0 <= data.labels.min() and data.labels.max() < 6
    info = data.info
    assert (info.name, info.shape, info.num_classes, info.captioned) == ("shapes", (3, resolution, resolution), 6, True)
    assert info.class_names == S.SHAPES
    assert len(data.captions) == len(data.attributes) == 50
    assert all(len(set(c)) == len(c) == S.CAPTIONS_PER_IMAGE for c in data.captions)
    for label, attrs in zip(data.labels.tolist(), data.attributes):
        assert S.SHAPES[label] == attrs["objects"][0]["shape"]  # the label is the main object's shape


def test_scenes_are_well_formed(train):
    counts = {1: 0, 2: 0}
    for attrs in train.attributes:
        objects = attrs["objects"]
        counts[len(objects)] += 1
        assert attrs["background"] not in {o["colour"] for o in objects}
        for o in objects:
            assert o["shape"] in S.SHAPES and o["colour"] in S.COLOURS
            assert o["size"] in S.SIZES and o["position"] in S.POSITIONS
        if len(objects) == 2:
            a, b = objects
            assert a["position"] != b["position"]
            reach = S.REACH[a["shape"]] * a["radius"] + S.REACH[b["shape"]] * b["radius"]
            assert math.dist(a["center"], b["center"]) > reach  # outlines never touch
    assert counts[1] > 800 and counts[2] > 500
    assert torch.bincount(train.labels, minlength=6).min() > 250  # classes balanced


def test_captions_name_every_object_truly_and_nothing_false(train):
    vocabulary = set(S.caption_vocabulary())
    size_words = {w: size for size, words in S.SIZE_WORDS.items() for w in words}
    for captions, attrs in zip(train.captions[:600], train.attributes[:600]):
        objects = attrs["objects"]
        colours = {o["colour"] for o in objects} | {attrs["background"]}
        for caption in captions:
            words = S.caption_words(caption)
            assert set(words) <= vocabulary, caption
            for o in objects:
                assert o["colour"] in words, caption
                assert any(_mentions(caption, w) for w in S.SHAPE_WORDS[o["shape"]]), caption
            assert {w for w in words if w in S.COLOURS} <= colours, caption
            assert {size_words[w] for w in words if w in size_words} <= {o["size"] for o in objects}, caption
            for shape, synonyms in S.SHAPE_WORDS.items():
                if any(_mentions(caption, w) for w in synonyms):
                    assert shape in {o["shape"] for o in objects}, caption
            for position, phrases in S.POSITION_WORDS.items():
                if any(_mentions(caption, p) for p in phrases):
                    assert position in {o["position"] for o in objects}, caption


def test_relations_are_true():
    red = {"shape": "star", "colour": "red", "size": "large", "position": "top-left"}
    blue = {"shape": "heart", "colour": "blue", "size": "small", "position": "bottom-right"}
    scene = {"objects": [red, blue], "background": "white"}
    rng, seen = random.Random(0), set()
    for _ in range(400):
        caption = S.describe(scene, rng)
        for relation, first in (("left of", "red"), ("above", "red"), ("right of", "blue"), ("below", "blue"),
                                ("beneath", "blue")):
            if _mentions(caption, relation):
                seen.add(relation)
                head, tail = caption.split(relation)
                assert first in head and first not in tail, caption
    assert {"left of", "above", "right of", "below"} <= seen


def test_captions_vary_in_template_synonyms_and_word_order(train):
    scene = {"objects": [{"shape": "circle", "colour": "white", "size": "small", "position": "top-left"}],
             "background": "green"}
    rng = random.Random(0)
    captions = {S.describe(scene, rng) for _ in range(300)}
    assert len(captions) > 100
    assert any(c.startswith("green") for c in captions) and any(c.startswith("a ") for c in captions)
    for synonym in ("tiny", "disk", "backdrop", "upper left"):
        assert any(_mentions(c, synonym) for c in captions), synonym
    # Across the set, many sentence forms: captions with the attribute words removed still differ.
    attribute_words = set(S.COLOURS) | {w for t in (S.SIZE_WORDS, S.SHAPE_WORDS) for ws in t.values() for w in ws}
    forms = {" ".join(w for w in S.caption_words(c) if w not in attribute_words)
             for captions in train.captions for c in captions}
    assert len(forms) > 200


def test_heldout_pairs_never_in_train_and_only_main_objects_in_heldout(train, heldout):
    held = set(S.HELDOUT_PAIRS)
    assert len(held) == 6 and {shape for _, shape in held} == set(S.SHAPES)
    for attrs in train.attributes:
        assert not any((o["colour"], o["shape"]) in held for o in attrs["objects"])
    main_pairs = [(a["objects"][0]["colour"], a["objects"][0]["shape"]) for a in heldout.attributes]
    assert set(main_pairs) == held
    assert all((o["colour"], o["shape"]) not in held for a in heldout.attributes for o in a["objects"][1:])
    assert heldout.info.name == "shapes-heldout" and heldout.captions[0]
    with pytest.raises(DataError, match="test"):
        S.render_scenes(1, 32, seed=0, split="test")


@pytest.mark.parametrize("resolution", [32, 64])
def test_objects_and_background_are_visible(resolution):
    data = S.render_scenes(300, resolution, seed=11)
    images = data.images.permute(0, 2, 3, 1).numpy().astype(int)  # [N, R, R, 3]
    for image, attrs in zip(images, data.attributes):
        occupied = {o["position"] for o in attrs["objects"]}
        corners = {"top-left": (0, 0), "top-right": (0, -1), "bottom-left": (-1, 0), "bottom-right": (-1, -1)}
        for position, (row, col) in corners.items():
            if position not in occupied:
                assert np.abs(image[row, col] - S.COLOURS[attrs["background"]]).max() <= 2
        for o in attrs["objects"]:  # every shape covers the pixel at its centre, small ones at 32px too
            x, y = (int(c * resolution) for c in o["center"])
            assert np.abs(image[y, x] - S.COLOURS[o["colour"]]).max() <= 12, (o, image[y, x])


def test_registered_sets_and_errors():
    assert DATASETS.get("shapes") is S.shapes and DATASETS.get("shapes-heldout") is S.shapes_heldout
    data = S.shapes_heldout(resolution=16, channels=3)
    assert data.images.shape == (S.HELDOUT_SIZE, 3, 16, 16) and data.info.captioned
    with pytest.raises(DataError, match="--channels 1"):
        S.shapes(channels=1)
    with pytest.raises(DataError, match="--channels 1"):
        S.shapes_heldout(None, 1)
    with pytest.raises(DataError, match="resolution"):
        S.render_scenes(1, 4, seed=0)


def test_any_size_from_the_data_spec(tmp_path):
    """`shapes@N` (and `shapes:test@N`, `shapes-heldout@N`) draws N scenes: the registered set is a prefix of a
    larger one, each split keeps its own seed; a fixed-size set or a bad N is refused by name, and a folder whose
    path holds an @ is still a folder."""
    from belamy.data import open_data, split_spec

    larger, registered = open_data("shapes@5012", 16), open_data("shapes", 16)
    assert len(larger) == 5012 and larger.info.name == "shapes"
    assert torch.equal(larger.images[:5000], registered.images) and larger.captions[:5000] == registered.captions
    test = open_data("shapes:test@7", 16)
    assert len(test) == 7 and torch.equal(test.images, open_data("shapes:test", 16).images[:7])
    heldout = open_data("shapes-heldout@9", 16)
    assert len(heldout) == 9
    assert all((a["objects"][0]["colour"], a["objects"][0]["shape"]) in S.HELDOUT_PAIRS for a in heldout.attributes)
    assert split_spec("shapes:test@7") == ("shapes", "test") and split_spec("shapes@20000") == ("shapes", None)
    with pytest.raises(DataError, match="'mnist' has a fixed size.*drop '@10'"):
        open_data("mnist@10")
    for bad in ("shapes@0", "shapes@many", "shapes:test@-3"):
        with pytest.raises(DataError, match=f"{re.escape(bad)}': the size after '@' must be a whole number"):
            open_data(bad)
    folder = tmp_path / "me@2"
    folder.mkdir()
    with pytest.raises(DataError, match="no image files .* found in .*me@2"):
        open_data(str(folder))
