"""Measuring image-to-image models on held-out data: what each task is judged by.

- translate (pix2pix): PSNR and SSIM against the true targets, and label preservation: the in-domain classifier of
  the target domain recognizes the input's class in the output; and an in-domain FID (the Frechet distance of that
  classifier's features, outputs against the target domain's real held-out images).
- translate (CycleGAN): label preservation and in-domain FID both ways (A -> B judged by a classifier of domain B,
  B -> A by one of domain A) and the cycle reconstruction error |F(G(a)) - a|, |G(F(b)) - b| (L1 and PSNR).
- upscale (SRGAN): PSNR and SSIM of the upscaled low-resolution images (made by the same bicubic downsampling as in
  training) against the originals, beside bicubic upsampling's.
- inpaint: PSNR inside the hole against the original, beside a mean-fill baseline (the hole filled with the mean
  of the known pixels), for masks drawn from a fixed seed.
The classifiers are belamy's cached in-domain classifiers, trained on the data's training split; their held-out
accuracy is reported beside every label-preservation figure (the ceiling of that figure).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from belamy.data import open_data, split_spec
from belamy.data.base import DataError, DataInfo, ImageSet
from belamy.metrics.image_quality import psnr, ssim


def evaluate_image_to_image(model, data: str, n: int | None = None, seed: int = 0,
                            batch_size: int = 64) -> dict[str, Any]:
    """Figures of an ImageToImagePipeline on `data` (a held-out split such as "edges2mnist:test"), on its first `n`
    images (all by default). Returns a flat dict of numbers plus "task", "data" and "n"."""
    resolution = model.resolution
    test = open_data(data, resolution, pairs=model.task == "translate")
    if not isinstance(test, ImageSet):
        raise DataError(f"{data} is not a set of images")
    count = len(test) if n is None else min(n, len(test))
    result: dict[str, Any] = {"task": model.task, "recipe": model.recipe, "data": data, "n": count}
    if model.task == "translate" and model.recipe == "cyclegan":
        result.update(_cycle(model, test, count, data, batch_size))
    elif model.task == "translate":
        result.update(_paired(model, test, count, data, batch_size))
    elif model.task == "upscale":
        result.update(_upscale(model, test, count, batch_size))
    elif model.task == "inpaint":
        result.update(_inpaint(model, test, count, seed, batch_size))
    else:
        raise ValueError(f"{model.recipe} models are not image-to-image models")
    return result


def _float(images: Tensor) -> Tensor:
    return images.float() / 127.5 - 1


def _batches(count: int, batch_size: int):
    for i in range(0, count, batch_size):
        yield slice(i, min(i + batch_size, count))


def _classifier(data: str, domain: str):
    """The cached in-domain classifier of `domain` ("A": the inputs, "B": the images) of the training split of
    `data`, or None when that domain has no labels."""
    from belamy.metrics.classifier import load_or_train_classifier

    name, _ = split_spec(data)
    train = open_data(f"{name}:train" if _has_splits(name) else name, pairs=True)
    images, labels = (train.inputs, train.input_labels) if domain == "A" else (train.images, train.labels)
    if images is None or labels is None or labels.min() < 0:
        return None
    shape = tuple(images.shape[1:])
    info = DataInfo(f"{train.info.name}-{domain}", shape, train.info.num_classes, train.info.class_names)
    return load_or_train_classifier(ImageSet(info, images, labels), info.name)


def _has_splits(name: str) -> bool:
    from belamy.data import DATASETS

    import inspect

    return name in DATASETS and "split" in inspect.signature(DATASETS.get(name)).parameters


def _classifier_fid(trained, real: Tensor, outputs: list[Tensor]) -> float:
    """Frechet distance of the in-domain classifier's features: outputs against real images of the target domain
    (an in-domain FID, as belamy eval computes for samples)."""
    from belamy.metrics.classifier import classifier_frechet_distance

    return classifier_frechet_distance(trained.net, _float(real), torch.cat(outputs))


def _label_accuracy(trained, outputs: list[Tensor], labels: Tensor) -> float:
    with torch.no_grad():
        predicted = torch.cat([trained.net(x).argmax(1) for x in outputs])
    return float((predicted == labels[:predicted.shape[0]]).float().mean())


def _paired(model, test: ImageSet, count: int, data: str, batch_size: int) -> dict[str, float]:
    reverse = model.options.get("direction", "AtoB") == "BtoA"
    sources = test.images if reverse else test.inputs
    targets = test.inputs if reverse else test.images
    target_labels = test.input_labels if reverse else test.labels
    if sources is None:
        raise DataError(f"{data} has no inputs to translate: give paired data")
    outputs, p, s = [], [], []
    for rows in _batches(count, batch_size):
        out = model.translate(_float(sources[rows]))
        outputs.append(out)
        p.append(psnr(out, _float(targets[rows])))
        s.append(ssim(out, _float(targets[rows])))
    result = {"psnr": float(torch.cat(p).clamp_max(100).mean()), "ssim": float(torch.cat(s).mean())}
    trained = _classifier(data, "A" if reverse else "B") if target_labels is not None else None
    if trained is not None:
        result["label_accuracy"] = _label_accuracy(trained, outputs, target_labels[:count])
        result["classifier_accuracy"] = trained.test_accuracy
        result["fid_classifier"] = _classifier_fid(trained, targets[:count], outputs)
    return result


def _cycle(model, test: ImageSet, count: int, data: str, batch_size: int) -> dict[str, float]:
    result: dict[str, float] = {}
    sides = (("a_to_b", "AtoB", test.inputs, test.input_labels, "B"),
             ("b_to_a", "BtoA", test.images, test.labels, "A"))
    for name, direction, images, labels, target_domain in sides:
        back = "BtoA" if direction == "AtoB" else "AtoB"
        n = min(count, images.shape[0])
        outputs, l1, p = [], [], []
        for rows in _batches(n, batch_size):
            x = _float(images[rows])
            out = model.translate(x, direction=direction)
            again = model.translate(out, direction=back)
            outputs.append(out)
            l1.append((again - x).abs().flatten(1).mean(1))
            p.append(psnr(again, x))
        result[f"cycle_l1_{name}"] = float(torch.cat(l1).mean())
        result[f"cycle_psnr_{name}"] = float(torch.cat(p).clamp_max(100).mean())
        trained = _classifier(data, target_domain) if labels is not None else None
        if trained is not None:
            result[f"label_accuracy_{name}"] = _label_accuracy(trained, outputs, labels[:n])
            result[f"classifier_accuracy_{target_domain}"] = trained.test_accuracy
            target_images = test.images if target_domain == "B" else test.inputs
            result[f"fid_classifier_{name}"] = _classifier_fid(trained, target_images, outputs)
    return result


def _upscale(model, test: ImageSet, count: int, batch_size: int) -> dict[str, float]:
    from belamy.recipes.srgan import downsample

    scale = int(model.options.get("scale", 4))
    figures: dict[str, list[Tensor]] = {"psnr": [], "ssim": [], "psnr_bicubic": [], "ssim_bicubic": []}
    for rows in _batches(count, batch_size):
        high = _float(test.images[rows])
        low = downsample(high, scale)
        out = model.upscale(low)
        bicubic = F.interpolate(low, scale_factor=float(scale), mode="bicubic", align_corners=False).clamp(-1, 1)
        figures["psnr"].append(psnr(out, high))
        figures["ssim"].append(ssim(out, high))
        figures["psnr_bicubic"].append(psnr(bicubic, high))
        figures["ssim_bicubic"].append(ssim(bicubic, high))
    result = {k: float(torch.cat(v).clamp_max(100).mean()) for k, v in figures.items()}
    result["scale"] = scale
    return result


def _inpaint(model, test: ImageSet, count: int, seed: int, batch_size: int) -> dict[str, float]:
    from belamy.recipes.inpaint import box_masks, stroke_masks

    g = torch.Generator().manual_seed(seed)
    size = test.info.shape[1]
    figures: dict[str, list[Tensor]] = {"psnr_hole": [], "psnr_hole_mean_fill": [], "ssim": [],
                                        "ssim_mean_fill": []}
    for rows in _batches(count, batch_size):
        x = _float(test.images[rows])
        b = x.shape[0]
        boxes, strokes = box_masks(torch.rand(b, 4, generator=g), size), stroke_masks(torch.rand(b, 5, 3, generator=g),
                                                                                      size)
        mask = torch.where(torch.rand(b, 1, 1, 1, generator=g) < 0.5, boxes, strokes)
        out = model.inpaint(x, mask)
        known = 1 - mask
        mean = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)
        filled = known * x + mask * mean
        figures["psnr_hole"].append(psnr(out, x, mask=mask))
        figures["psnr_hole_mean_fill"].append(psnr(filled, x, mask=mask))
        figures["ssim"].append(ssim(out, x))
        figures["ssim_mean_fill"].append(ssim(filled, x))
    return {k: float(torch.cat(v).clamp_max(100).mean()) for k, v in figures.items()}
