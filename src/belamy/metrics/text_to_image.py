"""Does a text-to-image model draw what the caption says? Measured on `shapes`, whose scenes come with the attributes
their captions were written from.

For held-out single-object scenes (shapes:test; shapes-heldout for colour-shape pairs never seen in training), the
model draws one image per caption, and each image is read back: the background colour (the median colour of its
border pixels) and the object's colour (the mean of the pixels that differ from the background), each the nearest
of the 12 named colours; and the object's shape, by an in-domain classifier trained once on the real training scenes
(cached like belamy's other classifiers). Each accuracy comes with the same reading of the real held-out images (its
ceiling) and chance (1/12, 1/12, 1/6). Captions that name the background colour are preferred, so that all three
attributes are asked for where possible.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from belamy.data import open_data
from belamy.data.base import DataInfo, ImageSet
from belamy.data.shapes import COLOURS, SHAPES

PALETTE = torch.tensor(list(COLOURS.values()), dtype=torch.float32)  # [12, 3], 0..255
OBJECT_DISTANCE = 60.0  # a pixel this far (RGB, 0..255) from the background colour belongs to the object
SHAPE_CLASSIFIER_STEPS = 600  # small objects are a few dozen pixels: more updates than digits need


def _nearest_colour(rgb: Tensor) -> Tensor:
    return torch.cdist(rgb, PALETTE).argmin(1)


def read_colours(images: Tensor) -> tuple[Tensor, Tensor]:
    """(background colour index, object colour index) of images [B, 3, H, W] in [-1, 1], by their pixels."""
    x = (images.float().clamp(-1, 1) + 1) * 127.5
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2)  # [B, 3, P]
    background = border.median(dim=2).values  # [B, 3]
    pixels = x.flatten(2)  # [B, 3, HW]
    far = (pixels - background[:, :, None]).norm(dim=1) > OBJECT_DISTANCE  # [B, HW]
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


def shapes_consistency(model, data: str = "shapes:test", n: int = 500, seed: int = 0, shapes: bool = True,
                       batch_size: int = 64) -> dict[str, Any]:
    """Attribute accuracies of a TextToImagePipeline's images for the captions of up to n single-object scenes of
    `data` (shapes:test or shapes-heldout); `shapes`: also the shape accuracy (trains its classifier once)."""
    test = open_data(data, model.resolution)
    if test.attributes is None:
        raise ValueError(f"{data} has no attributes to check images against: use shapes:test or shapes-heldout")
    rows = _single_object(test)[:n]
    prompts = []
    for i in rows:  # a caption naming the background colour, where one does
        background = test.attributes[i]["background"]
        prompts.append(next((c for c in test.captions[i] if background in c.split()), test.captions[i][0]))
    fake = model.generate(prompts, seed=seed, batch_size=batch_size)
    real = test.images[rows].float() / 127.5 - 1
    names = list(COLOURS)
    truth = {"background": torch.tensor([names.index(test.attributes[i]["background"]) for i in rows]),
             "colour": torch.tensor([names.index(test.attributes[i]["objects"][0]["colour"]) for i in rows])}
    result: dict[str, Any] = {"data": data, "n": len(rows)}
    for images, suffix in ((fake, ""), (real, "_real")):
        background, colour = read_colours(images)
        result[f"background_accuracy{suffix}"] = float((background == truth["background"]).float().mean())
        result[f"colour_accuracy{suffix}"] = float((colour == truth["colour"]).float().mean())
    result["colour_chance"] = 1 / len(names)
    if shapes:
        trained = shape_classifier(model.resolution)
        labels = torch.tensor([SHAPES.index(test.attributes[i]["objects"][0]["shape"]) for i in rows])
        with torch.no_grad():
            for images, suffix in ((fake, ""), (real, "_real")):
                predicted = torch.cat([trained.net(images[i:i + batch_size]).argmax(1)
                                       for i in range(0, len(rows), batch_size)])
                result[f"shape_accuracy{suffix}"] = float((predicted == labels).float().mean())
        result["shape_chance"] = 1 / len(SHAPES)
    return result
