"""Feature extractors, registered by name (`inception`, `classifier`), and any nn.Module as one.

    from belamy.metrics import load_extractor
    inception = load_extractor("inception", weights="pt_inception-2015-12-05-6726825d.pth", device="cuda")
    features, logits = inception(images)          # uint8 or [-1, 1] images [B, C, H, W] -> [B, 2048], [B, 1008]
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from belamy.data.base import ImageSet
from belamy.metrics.extractors.base import EXTRACTORS, RESIZERS, ExtractorError, ExtractorOptions, \
    FeatureExtractor, resize_images
# Importing these modules registers "classifier" and "inception" in EXTRACTORS.
from belamy.metrics.extractors.classifier import classifier_extractor
from belamy.metrics.extractors.inception import FIDInceptionV3, MissingWeightsError, inception_extractor, \
    load_fid_inception

__all__ = ["EXTRACTORS", "RESIZERS", "ExtractorError", "ExtractorOptions", "FIDInceptionV3", "FeatureExtractor",
           "MissingWeightsError", "classifier_extractor", "inception_extractor", "load_extractor",
           "load_fid_inception", "resize_images"]


def load_extractor(extractor: str | FeatureExtractor | nn.Module, *, weights: str | Path | None = None,
                   resizer: str = "clean", device: str = "cpu", data: ImageSet | str | None = None,
                   data_name: str = "") -> FeatureExtractor:
    """A FeatureExtractor from a registered name, or the extractor itself, or any nn.Module (wrapped: it must take
    images [B, 3, H, W] in [-1, 1] at their own size and return features [B, D] or (features, logits)).

    weights: the inception weights file (default: BELAMY_HOME/weights/pt_inception-2015-12-05-6726825d.pth);
    resizer: "clean" or "legacy" (see belamy.metrics.extractors.base); data: the labeled images the classifier is
    trained on (an ImageSet, or a built-in name or folder path, read at its own resolution)."""
    if resizer not in RESIZERS:
        raise ValueError(f"unknown resizer {resizer!r}; valid resizers: {', '.join(RESIZERS)}")
    if isinstance(extractor, FeatureExtractor):
        return extractor
    if isinstance(extractor, nn.Module):
        return FeatureExtractor(extractor, type(extractor).__name__, input_size=None, input_channels=3,
                                resizer=resizer, device=device)
    if isinstance(data, str):
        from belamy.data import open_data

        data_name = data_name or data
        data = open_data(data, cache=True)
        if not isinstance(data, ImageSet):
            raise ExtractorError(f"{data_name} is not a set of images")
    factory = EXTRACTORS.get(extractor)
    return factory(ExtractorOptions(weights=None if weights is None else str(weights), resizer=resizer,
                                    device=device, data=data, data_name=data_name))
