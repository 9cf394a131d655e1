"""The in-domain classifier as a feature extractor: the offline default for labeled image data.

Inception features describe ImageNet photographs; on 28x28 digits a small classifier trained on the digits
themselves is the yardstick the MNIST literature uses for FID-like numbers (e.g. Binkowski et al. 2018, "Demystifying
MMD GANs", sec. 5, LeNet features for MNIST). Its numbers are only comparable between runs measured with the same
classifier (the weights hash in every fingerprint) and only as good as the classifier: its held-out accuracy is
reported beside each of them."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from belamy.metrics.cache import tensors_sha256
from belamy.metrics.classifier import ClassifierConfig, DigitClassifier, load_or_train_classifier
from belamy.metrics.extractors.base import EXTRACTORS, ExtractorError, ExtractorOptions, FeatureExtractor


class FeaturesAndLogits(nn.Module):
    """A DigitClassifier answering (embedding / scale, logits) in one pass, as feature extractors do; `scale` is the
    embedding's RMS over the training data (see belamy.metrics.classifier.embedding_rms)."""

    def __init__(self, net: DigitClassifier, scale: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float64))  # hashed with the weights

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features, logits = self.net.embed_and_classify(x)
        return features / self.scale.float(), logits


@EXTRACTORS.register("classifier", "a small classifier trained once on the labeled real data (cached): 128-d")
def classifier_extractor(options: ExtractorOptions) -> FeatureExtractor:
    data = options.data
    if data is None or data.info.num_classes < 2:
        what = f"{options.data_name!r} has no labels" if data is not None else "no labeled data was given"
        raise ExtractorError(f"the classifier extractor is trained on labeled images, and {what}: use a labeled "
                             f"data set (mnist, digits, a folder of class folders) as the real side, or "
                             f"--extractor inception")
    config = ClassifierConfig()
    trained = load_or_train_classifier(data, options.data_name or data.info.name, config)
    c, h, _ = data.info.shape
    net = FeaturesAndLogits(trained.net, trained.feature_scale)
    return FeatureExtractor(net, "classifier", input_size=h, input_channels=c, input_range=(-1.0, 1.0),
                            resizer=options.resizer, device=options.device,
                            weights_sha256=tensors_sha256(net.state_dict()), accuracy=trained.test_accuracy,
                            trained_on=options.data_name or data.info.name,
                            details={"cached": trained.cached, "weights_file": trained.path})
