"""Does a text-to-image model draw what the caption says? Measured on `shapes`, whose scenes come with the attributes
their captions were written from.

For held-out single-object scenes (shapes:test; shapes-heldout for colour-shape pairs never seen in training), the
model draws one image per caption, and each image is read back: the background colour (the median colour of its
border pixels) and the object's colour (the mean of the pixels that differ from the background), each the nearest
of the 12 named colours; the object's position (the centroid of those pixels, on the renderer's 3x3 grid) and size
(their area against the midpoint of the shape's small and large areas); and the object's shape, by an in-domain
classifier trained once on the real training scenes (cached like belamy's other classifiers). Each accuracy comes
with the same reading of the real held-out images (its ceiling) and chance (1/12, 1/12, 1/9, 1/2, 1/6). Of each
scene's captions the one that names the most of background, position and size is asked for; position and size are
scored on the images whose caption names them (n_position, n_size).

Beside the attributes, "fid": an in-domain FID (the Frechet distance of that shape classifier's features, the role
the in-domain classifier plays for belamy's other labeled data) of the images against as many other real scenes of
the same distribution (rendered from another seed), with its floor "fid_real": the same distance for the real
scenes the captions describe (what a model that draws real scenes would score at this n).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from belamy.data import open_data
from belamy.data.base import DataInfo, ImageSet
from belamy.data.shapes import CIRCLE_RADIUS, COLOURS, GRID_STEP, OUTLINES, POSITION_WORDS, POSITIONS, SHAPES, \
    SIZE_WORDS, SIZES, render_scenes

PALETTE = torch.tensor(list(COLOURS.values()), dtype=torch.float32)  # [12, 3], 0..255
OBJECT_DISTANCE = 60.0  # a pixel this far (RGB, 0..255) from the background colour belongs to the object
SHAPE_CLASSIFIER_STEPS = 2400  # small objects are a few dozen pixels: 600 updates gave 67% on held-out real scenes,
# 2,400 gave 96% (about 3 CPU minutes, once: the classifier is cached)
ATTRIBUTES = ("colour", "shape", "position", "size")  # read back from each image ("colour": also background)
MEASURES = (*ATTRIBUTES, "fid")  # what shapes_consistency can measure
REFERENCE_SEED = 2021  # FID's reference scenes: a seed no registered shapes set uses


def _nearest_colour(rgb: Tensor) -> Tensor:
    return torch.cdist(rgb, PALETTE).argmin(1)


def _object_pixels(images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(pixels [B, 3, HW] in 0..255, background colour [B, 3], object mask [B, HW]) of images in [-1, 1]."""
    x = (images.float().clamp(-1, 1) + 1) * 127.5
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2)  # [B, 3, P]
    background = border.median(dim=2).values  # [B, 3]
    pixels = x.flatten(2)  # [B, 3, HW]
    return pixels, background, (pixels - background[:, :, None]).norm(dim=1) > OBJECT_DISTANCE


def read_colours(images: Tensor) -> tuple[Tensor, Tensor]:
    """(background colour index, object colour index) of images [B, 3, H, W] in [-1, 1], by their pixels."""
    pixels, background, far = _object_pixels(images)
    counts = far.sum(1, keepdim=True).clamp_min(1)
    obj = (pixels * far[:, None]).sum(2) / counts  # [B, 3]
    object_index = torch.where(far.any(1), _nearest_colour(obj), torch.full_like(far[:, 0], -1, dtype=torch.long))
    return _nearest_colour(background), object_index


def _single_object(data: ImageSet) -> list[int]:
    return [i for i, a in enumerate(data.attributes) if len(a["objects"]) == 1]


def shape_classifier(resolution: int):
    """The cached classifier of the object's shape, trained on the single-object scenes of the `shapes` set."""
    from belamy.metrics.classifier import ClassifierConfig, load_or_train_classifier

    train = open_data("shapes", resolution)
    rows = _single_object(train)
    labels = torch.tensor([SHAPES.index(train.attributes[i]["objects"][0]["shape"]) for i in rows])
    info = DataInfo("shapes-shape", train.info.shape, len(SHAPES), SHAPES)
    return load_or_train_classifier(ImageSet(info, train.images[rows], labels), info.name,
                                    ClassifierConfig(min_steps=SHAPE_CLASSIFIER_STEPS))


def _unit_area(shape: str) -> float:
    """Area of a shape of radius 1 as the renderer draws it (shoelace formula on its outline)."""
    if shape == "circle":
        return math.pi * CIRCLE_RADIUS ** 2
    x, y = OUTLINES[shape][:, 0], OUTLINES[shape][:, 1]
    return 0.5 * abs(float((x * np.roll(y, -1) - y * np.roll(x, -1)).sum()))


def read_layout(images: Tensor, shapes: list[str]) -> tuple[list[str | None], list[str | None]]:
    """(position names, size names) of the object in each image [B, 3, H, W] in [-1, 1] whose shape is `shapes[b]`:
    the grid cell nearest its pixels' centroid, and "large" where their area (a fraction of the image) exceeds the
    geometric mean of the shape's small and large areas; None where no pixel stands out from the background."""
    _, _, far = _object_pixels(images)
    side = images.shape[-1]
    coordinates = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    mask = far.view(-1, side, side).float()
    count = mask.sum((1, 2))
    cx = (mask.sum(1) * coordinates).sum(1) / count.clamp_min(1)
    cy = (mask.sum(2) * coordinates).sum(1) / count.clamp_min(1)
    cells = {cell: name for name, cell in POSITIONS.items()}
    small, large = SIZES["small"], SIZES["large"]
    positions: list[str | None] = []
    sizes: list[str | None] = []
    for b, shape in enumerate(shapes):
        if count[b] == 0:
            positions.append(None)
            sizes.append(None)
            continue
        col, row = (min(2, max(0, round((float(c) - 0.5) / GRID_STEP) + 1)) for c in (cx[b], cy[b]))
        positions.append(cells[(col, row)])
        threshold = _unit_area(shape) * small * large  # area at radius sqrt(small * large)
        sizes.append("large" if float(count[b]) / side ** 2 > threshold else "small")
    return positions, sizes


def _named(caption: str, scene: dict) -> set[str]:
    """Which of background, position and size of the scene's (single) object `caption` names."""
    obj, words = scene["objects"][0], caption.split()
    named = {"background"} if scene["background"] in words else set()
    if any(phrase in caption for phrase in POSITION_WORDS[obj["position"]]):
        named.add("position")
    if any(word in words for word in SIZE_WORDS[obj["size"]]):
        named.add("size")
    return named


def shapes_consistency(model, data: str = "shapes:test", n: int = 500, seed: int = 0,
                       attributes: tuple[str, ...] = ATTRIBUTES, batch_size: int = 64) -> dict[str, Any]:
    """Attribute accuracies of a TextToImagePipeline's images for the captions of up to n single-object scenes of
    `data` (shapes:test or shapes-heldout), and their in-domain FID. `attributes`: any of MEASURES ("shape" and
    "fid" train the shape classifier once)."""
    unknown = [a for a in attributes if a not in MEASURES]
    if unknown or not attributes:
        raise ValueError(f"unknown text-to-image measures {unknown or attributes}: choose from "
                         f"{', '.join(MEASURES)}")
    test = open_data(data, model.resolution)
    if test.attributes is None:
        raise ValueError(f"{data} has no attributes to check images against: use shapes:test or shapes-heldout")
    rows = _single_object(test)[:n]
    scenes = [test.attributes[i] for i in rows]
    prompts = [max(test.captions[i], key=lambda c, s=s: len(_named(c, s))) for i, s in zip(rows, scenes)]
    fake = model.generate(prompts, seed=seed, batch_size=batch_size)
    real = test.images[rows].float() / 127.5 - 1
    result: dict[str, Any] = {"data": data, "n": len(rows)}
    readings = ((fake, ""), (real, "_real"))
    if "colour" in attributes:
        names = list(COLOURS)
        background_truth = torch.tensor([names.index(s["background"]) for s in scenes])
        colour_truth = torch.tensor([names.index(s["objects"][0]["colour"]) for s in scenes])
        for images, suffix in readings:
            background, colour = read_colours(images)
            result[f"background_accuracy{suffix}"] = float((background == background_truth).float().mean())
            result[f"colour_accuracy{suffix}"] = float((colour == colour_truth).float().mean())
        result["colour_chance"] = 1 / len(names)
    for attribute, chance in (("position", 1 / len(POSITIONS)), ("size", 1 / len(SIZES))):
        if attribute not in attributes:
            continue
        asked = [k for k, (c, s) in enumerate(zip(prompts, scenes)) if attribute in _named(c, s)]
        result[f"n_{attribute}"] = len(asked)
        shapes = [scenes[k]["objects"][0]["shape"] for k in asked]
        for images, suffix in readings:
            read = read_layout(images[asked], shapes)[0 if attribute == "position" else 1] if asked else []
            right = [r == scenes[k]["objects"][0][attribute] for r, k in zip(read, asked)]
            result[f"{attribute}_accuracy{suffix}"] = sum(right) / max(len(right), 1)
        result[f"{attribute}_chance"] = chance
    if "shape" in attributes or "fid" in attributes:
        trained = shape_classifier(model.resolution)
    if "shape" in attributes:
        labels = torch.tensor([SHAPES.index(s["objects"][0]["shape"]) for s in scenes])
        with torch.no_grad():
            for images, suffix in readings:
                predicted = torch.cat([trained.net(images[i:i + batch_size]).argmax(1)
                                       for i in range(0, len(rows), batch_size)])
                result[f"shape_accuracy{suffix}"] = float((predicted == labels).float().mean())
        result["shape_chance"] = 1 / len(SHAPES)
        result["shape_classifier_accuracy"] = trained.test_accuracy
    if "fid" in attributes:
        from belamy.metrics.classifier import classifier_frechet_distance

        split = "heldout" if test.info.name == "shapes-heldout" else "train"  # the distribution `data` is drawn from
        others = render_scenes(4 * len(rows), model.resolution, REFERENCE_SEED, split)
        reference = others.images[_single_object(others)[:len(rows)]].float() / 127.5 - 1
        result["fid"] = classifier_frechet_distance(trained.net, reference, fake)
        result["fid_real"] = classifier_frechet_distance(trained.net, reference, real)
    return result
