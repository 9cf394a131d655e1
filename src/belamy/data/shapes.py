"""The built-in `shapes` set: procedurally rendered, captioned scenes of one or two coloured shapes.

Every scene is drawn from its own random.Random seeded with (seed, index), so a set of any size is the same on every
machine, needs no download, and `render_scenes(n, ...)` is a prefix of `render_scenes(m > n, ...)`. Each image comes
with:
- a label: the shape of its first (main) object, one of SHAPES;
- its attributes: {"objects": [{"shape", "colour", "size", "position", "center", "radius"}, ...], "background"},
  with center (x, y) and radius as fractions of the image side (an inpainting mask can be cut from them);
- CAPTIONS_PER_IMAGE different captions (text-to-image), written from the attributes with varied templates and
  synonyms. A caption may leave out the size, position or background, but never states anything untrue, and always
  names the colour and (a synonym of) the shape of every object.

Compositional generalisation: HELDOUT_PAIRS lists one (colour, shape) pair per shape that split "train" never draws,
for any object; split "heldout" draws only scenes whose main object is a held-out pair (its second object, if any, is
an ordinary one). A model trained on `shapes` and asked for "a purple star" must compose a colour and a shape it has
seen only apart; `shapes-heldout` holds real images of such scenes to compare against.

Scenes are drawn with PIL at SUPERSAMPLE x the resolution and box-downsampled (each pixel averages 4x4 samples): edges
are antialiased, and flat fills keep their exact colour (no Lanczos ringing), which the tests rely on.
"""

from __future__ import annotations

import math
import random
import re

import numpy as np
import torch
from PIL import Image, ImageDraw

from belamy.data.base import DataError, DataInfo, ImageSet
from belamy.data.builtin import DATASETS

SHAPES = ("circle", "square", "triangle", "star", "cross", "heart")  # the class names, in label order
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (245, 215, 50),
    "purple": (140, 60, 190), "orange": (245, 140, 30), "pink": (245, 150, 200), "cyan": (60, 210, 220),
    "brown": (140, 90, 40), "gray": (128, 128, 128), "white": (245, 245, 245), "black": (20, 20, 20),
}
SIZES: dict[str, float] = {"small": 0.11, "large": 0.18}  # radius, as a fraction of the side, before +-10% jitter
# (column, row) on a 3x3 grid; neighbouring centres are GRID_STEP apart (fraction of the side).
POSITIONS: dict[str, tuple[int, int]] = {
    "top-left": (0, 0), "top": (1, 0), "top-right": (2, 0),
    "left": (0, 1), "center": (1, 1), "right": (2, 1),
    "bottom-left": (0, 2), "bottom": (1, 2), "bottom-right": (2, 2),
}
GRID_STEP = 0.27  # wide enough for two small shapes side by side, narrow enough that a large one stays inside
JITTER = 0.02  # random offset of a centre, fraction of the side: scenes are not all on 9 exact spots

# Held out of split "train", one per shape so that split "heldout" has every class; each colour still appears with
# five other shapes in training and each shape with eleven other colours.
HELDOUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("pink", "circle"), ("blue", "square"), ("green", "triangle"),
    ("purple", "star"), ("cyan", "cross"), ("orange", "heart"),
)
SPLITS = ("train", "heldout")

DEFAULT_RESOLUTION = 32
MIN_RESOLUTION = 8  # below this a star and a cross are a few blurred pixels
SUPERSAMPLE = 4
TWO_OBJECT_PROBABILITY = 0.4
CAPTIONS_PER_IMAGE = 4
SHAPES_SIZE, SHAPES_SEED = 5_000, 2018  # the registered `shapes` set
HELDOUT_SIZE, HELDOUT_SEED = 1_000, 2019  # the registered `shapes-heldout` set (another seed: no shared streams)
SHAPES_TEST_SEED = 2020  # shapes:test, 1,000 scenes of the training distribution

# ---- Words. Colours have no synonyms: a caption's colour word is always the scene's exact colour name. ----
SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big", "huge")}
SHAPE_WORDS = {
    "circle": ("circle", "disk", "round dot"), "square": ("square", "box"), "triangle": ("triangle",),
    "star": ("star", "five-pointed star"), "cross": ("cross", "plus sign"), "heart": ("heart",),
}
# Every phrase can be followed by "of a <colour> image" and stay grammatical (templates rely on it).
POSITION_WORDS = {
    "center": ("in the center", "in the middle", "at the center"),
    "left": ("on the left", "at the left", "on the left side"),
    "right": ("on the right", "at the right", "on the right side"),
    "top": ("at the top", "near the top", "in the top middle"),
    "bottom": ("at the bottom", "near the bottom", "in the bottom middle"),
    "top-left": ("in the top left", "in the upper left", "in the top left corner", "at the upper left"),
    "top-right": ("in the top right", "in the upper right", "in the top right corner", "at the upper right"),
    "bottom-left": ("in the bottom left", "in the lower left", "in the bottom left corner", "at the lower left"),
    "bottom-right": ("in the bottom right", "in the lower right", "in the bottom right corner", "at the lower right"),
}
# Relations between two objects, said only when true of their grid cells (jitter never reverses them).
RELATION_WORDS = {"left": ("to the left of", "left of"), "right": ("to the right of", "right of"),
                  "above": ("above",), "below": ("below", "beneath")}
BACKGROUND_WORDS = ("background", "backdrop")
IMAGE_WORDS = ("image", "picture")
NOUN_PHRASES = ("a {size} {colour} {shape}", "a {colour} {shape}")
BACKGROUND_PHRASES = ("on a {bg} {bgw}", "on {bg}", "against a {bg} {bgw}")
# Fields: np/pp (noun and position phrases of object 1, 2), bgp (a background phrase), bg (its colour), bgw
# ("background" or a synonym), img ("image" or a synonym), rel (a true relation of object 1 to object 2).
ONE_OBJECT_TEMPLATES = (
    "{np1}", "{np1} {pp1}", "{np1} {bgp}", "{np1} {pp1} {bgp}", "{np1} {pp1}, {bg} {bgw}",
    "{bg} {bgw}, {np1} {pp1}", "{bg} {bgw} with {np1} {pp1}", "{np1} {pp1} of a {bg} {img}",
    "a {bg} {img} with {np1} {pp1}", "a {bg} {img} showing {np1}", "a {img} of {np1} {bgp}",
    "{pp1}, {np1} {bgp}", "there is {np1} {pp1} {bgp}",
)
TWO_OBJECT_TEMPLATES = (
    "{np1} and {np2}", "{np1} and {np2} {bgp}", "{np1} {pp1} and {np2} {pp2}",
    "{np1} {pp1} and {np2} {pp2} {bgp}", "{bg} {bgw}, {np1} {pp1} and {np2} {pp2}", "{bg} {bgw} with {np1} and {np2}",
    "a {bg} {img} with {np1} {pp1} and {np2} {pp2}", "two shapes {bgp}: {np1} and {np2}", "{np1} {rel} {np2}",
    "{np1} {rel} {np2} {bgp}", "{bg} {bgw}, {np1} {rel} {np2}", "{np1} {pp1}, {np2} {pp2}, {bg} {bgw}",
    "a {img} of {np1} {rel} {np2}",
)


def _outlines() -> dict[str, np.ndarray]:
    """Vertices [V, 2] of each polygonal shape in the box [-1, 1]^2 (y down), sized to look about as big as each
    other; the circle is drawn as an ellipse of radius CIRCLE_RADIUS."""
    k = np.arange(10)
    angle = -np.pi / 2 + k * np.pi / 5  # the first point at the top
    star = np.where(k % 2 == 0, 1.15, 0.5)[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    w, h = 0.3, 0.95  # cross: half-width and half-length of an arm
    cross = [(-w, -h), (w, -h), (w, -w), (h, -w), (h, w), (w, w), (w, h), (-w, h), (-w, w), (-h, w), (-h, -w),
             (-w, -w)]
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)  # the classic heart curve, flipped for y down
    heart = np.stack([16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))],
                     axis=1)
    heart = heart - (heart.max(0) + heart.min(0)) / 2
    return {
        "square": np.array([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]),
        "triangle": 1.1 * np.array([(0.0, -0.75), (0.866, 0.75), (-0.866, 0.75)]),  # bounding box centred
        "star": star,
        "cross": np.array(cross),
        "heart": heart / np.abs(heart).max(),
    }


OUTLINES = _outlines()
CIRCLE_RADIUS = 0.9
# Distance from the centre to the farthest point of each shape (per unit radius): two objects are placed at least
# the sum of these (plus a margin) apart, so their outlines never touch.
REACH = {"circle": CIRCLE_RADIUS, **{s: float(np.linalg.norm(v, axis=1).max()) for s, v in OUTLINES.items()}}
GAP = 0.02  # fraction of the side kept clear between two objects
_ORDINARY_COLOURS = {s: tuple(c for c in COLOURS if (c, s) not in HELDOUT_PAIRS) for s in SHAPES}


def render_scenes(n: int, resolution: int = DEFAULT_RESOLUTION, seed: int = SHAPES_SEED,
                  split: str = "train") -> ImageSet:
    """Draw and render `n` scenes: uint8 images [n, 3, R, R], labels (main shape), captions and attributes.

    Scene i depends only on (seed, i, split): the same on every machine, and a smaller n gives a prefix."""
    if split not in SPLITS:
        raise DataError(f"unknown shapes split {split!r}: choose one of {', '.join(SPLITS)}")
    if resolution < MIN_RESOLUTION:
        raise DataError(f"shapes needs --resolution {MIN_RESOLUTION} or more (got {resolution}): smaller shapes "
                        f"are not recognisable")
    images = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    attributes, captions = [], []
    for i in range(n):
        rng = random.Random(f"shapes:{seed}:{i}")  # a string seed is hashed (SHA-512): same on every machine
        scene = _sample_scene(rng, split)
        images[i] = _render(scene, resolution)
        attributes.append(scene)
        captions.append(_captions(scene, rng, CAPTIONS_PER_IMAGE))
    labels = torch.tensor([SHAPES.index(s["objects"][0]["shape"]) for s in attributes], dtype=torch.int64)
    name = "shapes" if split == "train" else f"shapes-{split}"  # info.name keys cached classifiers: keep them apart
    info = DataInfo(name, (3, resolution, resolution), len(SHAPES), SHAPES, captioned=True)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # [N, R, R, 3] -> [N, 3, R, R]
    return ImageSet(info, pixels, labels, captions=captions, attributes=attributes)


def _sample_scene(rng: random.Random, split: str) -> dict:
    """Attributes of one scene: a main object (a held-out pair in split "heldout", else an ordinary one), maybe a
    second ordinary object placed clear of it, and a background colour that no object has."""
    if split == "heldout":
        colour, shape = rng.choice(HELDOUT_PAIRS)
    else:
        shape = rng.choice(SHAPES)  # shape first: the classes stay balanced
        colour = rng.choice(_ORDINARY_COLOURS[shape])
    main = _place(rng, shape, colour, rng.choice(tuple(SIZES)), rng.choice(tuple(POSITIONS)))
    objects = [main]
    if rng.random() < TWO_OBJECT_PROBABILITY:
        shape = rng.choice(SHAPES)
        colour = rng.choice(_ORDINARY_COLOURS[shape])
        # The first free cell (in random order) that fits; a large second object that fits nowhere becomes small.
        cells = rng.sample([p for p in POSITIONS if p != main["position"]], len(POSITIONS) - 1)
        for size in dict.fromkeys((rng.choice(tuple(SIZES)), "small")):
            fits = [o for o in (_place(rng, shape, colour, size, p) for p in cells) if _apart(o, main)]
            if fits:
                objects.append(fits[0])
                break
    used = {o["colour"] for o in objects}
    background = rng.choice(tuple(c for c in COLOURS if c not in used))
    return {"objects": objects, "background": background}


def _place(rng: random.Random, shape: str, colour: str, size: str, position: str) -> dict:
    col, row = POSITIONS[position]
    x = 0.5 + (col - 1) * GRID_STEP + rng.uniform(-JITTER, JITTER)
    y = 0.5 + (row - 1) * GRID_STEP + rng.uniform(-JITTER, JITTER)
    radius = SIZES[size] * rng.uniform(0.9, 1.1)
    return {"shape": shape, "colour": colour, "size": size, "position": position,
            "center": (round(x, 4), round(y, 4)), "radius": round(radius, 4)}


def _apart(a: dict, b: dict) -> bool:
    distance = math.hypot(a["center"][0] - b["center"][0], a["center"][1] - b["center"][1])
    return distance >= REACH[a["shape"]] * a["radius"] + REACH[b["shape"]] * b["radius"] + GAP


def _render(scene: dict, resolution: int) -> np.ndarray:
    """One scene as uint8 [R, R, 3]: drawn at SUPERSAMPLE x R, then each SUPERSAMPLE^2 block averaged."""
    side = resolution * SUPERSAMPLE
    image = Image.new("RGB", (side, side), COLOURS[scene["background"]])
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        x, y = obj["center"][0] * side, obj["center"][1] * side
        r = obj["radius"] * side
        fill = COLOURS[obj["colour"]]
        if obj["shape"] == "circle":
            r *= CIRCLE_RADIUS
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        else:
            draw.polygon((OUTLINES[obj["shape"]] * r + (x, y)).ravel().tolist(), fill=fill)
    return np.asarray(image.reduce(SUPERSAMPLE))


# ---- Captions ----

def describe(attributes: dict, rng: random.Random) -> str:
    """One caption of a scene, true of it: every object's colour and shape, and maybe sizes, positions, the
    background or a relation between the two objects, in one of many templates with synonyms drawn from `rng`."""
    objects = list(attributes["objects"])
    if len(objects) == 2 and rng.random() < 0.5:
        objects.reverse()  # either object may be named first
    bg = attributes["background"]
    fields = {"bg": bg, "bgw": rng.choice(BACKGROUND_WORDS), "img": rng.choice(IMAGE_WORDS)}
    fields["bgp"] = rng.choice(BACKGROUND_PHRASES).format(**fields)
    for i, obj in enumerate(objects, start=1):
        size, shape = rng.choice(SIZE_WORDS[obj["size"]]), rng.choice(SHAPE_WORDS[obj["shape"]])
        fields[f"np{i}"] = rng.choice(NOUN_PHRASES).format(size=size, colour=obj["colour"], shape=shape)
        fields[f"pp{i}"] = rng.choice(POSITION_WORDS[obj["position"]])
    if len(objects) == 1:
        template = rng.choice(ONE_OBJECT_TEMPLATES)
    else:
        template = rng.choice(TWO_OBJECT_TEMPLATES)
        fields["rel"] = rng.choice(RELATION_WORDS[rng.choice(_relations(*objects))])
    return re.sub(r"\ba (?=[aeiou])", "an ", template.format(**fields))  # "a orange" -> "an orange"


def _relations(a: dict, b: dict) -> list[str]:
    """Which of left/right/above/below a's cell is relative to b's (two objects never share a cell: at least one)."""
    (ca, ra), (cb, rb) = POSITIONS[a["position"]], POSITIONS[b["position"]]
    return [name for name, true in (("left", ca < cb), ("right", ca > cb), ("above", ra < rb), ("below", ra > rb))
            if true]


def _captions(attributes: dict, rng: random.Random, k: int) -> list[str]:
    """`k` distinct captions (fewer only if the templates cannot give k, which they always can in practice)."""
    captions: list[str] = []
    for _ in range(20 * k):
        caption = describe(attributes, rng)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == k:
                break
    return captions


def caption_words(caption: str) -> list[str]:
    """A caption's words: lower-case runs of letters ("top-left corner" -> top, left, corner)."""
    return re.findall(r"[a-z]+", caption.lower())


def caption_vocabulary() -> tuple[str, ...]:
    """Every word a caption can contain (as `caption_words` splits it), sorted: the vocabulary of a text encoder."""
    phrases = [*ONE_OBJECT_TEMPLATES, *TWO_OBJECT_TEMPLATES, *NOUN_PHRASES, *BACKGROUND_PHRASES, *COLOURS,
               *BACKGROUND_WORDS, *IMAGE_WORDS, "an"]
    for table in (SIZE_WORDS, SHAPE_WORDS, POSITION_WORDS, RELATION_WORDS):
        phrases += [p for options in table.values() for p in options]
    return tuple(sorted({w for p in phrases for w in caption_words(re.sub(r"\{\w+\}", " ", p))}))


# ---- The registered sets ----

def _check_channels(name: str, channels: int | None) -> None:
    if channels not in (None, 3):
        raise DataError(f"{name} is RGB (its captions name colours): --channels {channels} does not apply")


@DATASETS.register("shapes", "5,000 rendered scenes of 1-2 coloured shapes with 4 captions each, RGB 32x32 "
                             "(any --resolution, any size: shapes@20000), 6 classes; held-out colour-shape pairs "
                             "never appear")
def shapes(resolution: int | None = None, channels: int | None = None, split: str | None = None,
           size: int | None = None) -> ImageSet:
    """The training split: no object is one of HELDOUT_PAIRS. `split` "test" (shapes:test): 1,000 other scenes
    drawn the same way (another seed), for held-out measurements such as super-resolution PSNR. `size`: that many
    scenes instead (`shapes@20000`); the default set is the first 5,000 of any larger one."""
    _check_channels("shapes", channels)
    if split not in (None, "train", "test"):
        raise DataError(f"shapes has splits train and test (and the set shapes-heldout), not {split!r}")
    if split == "test":
        return render_scenes(size or HELDOUT_SIZE, resolution or DEFAULT_RESOLUTION, SHAPES_TEST_SEED, "train")
    return render_scenes(size or SHAPES_SIZE, resolution or DEFAULT_RESOLUTION, SHAPES_SEED, "train")


@DATASETS.register("shapes-heldout", "1,000 `shapes` scenes whose main object is a held-out colour-shape pair "
                                     "(purple star, orange heart, ...): compositional generalisation")
def shapes_heldout(resolution: int | None = None, channels: int | None = None, size: int | None = None) -> ImageSet:
    """The held-out split: the main object of every scene is one of HELDOUT_PAIRS (`size`: that many, not 1,000)."""
    _check_channels("shapes-heldout", channels)
    return render_scenes(size or HELDOUT_SIZE, resolution or DEFAULT_RESOLUTION, HELDOUT_SEED, "heldout")
