"""A small in-domain digit classifier: an offline yardstick for samples of labeled image data.

Where no Inception weights are at hand (tests, CI, a laptop without internet), "does a trained classifier recognize
the samples?" is the usual MNIST-like measure: its confidence on samples and the histogram of predicted classes
(mode coverage) both move as a GAN learns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from belamy.data.base import ImageSet


class DigitClassifier(nn.Module):
    """Two conv layers and a linear head; input [B, C, H, W] in [-1, 1] at any resolution (pooled to 7x7)."""

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(7),
        )
        self.head = nn.Linear(2 * width * 49, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))  # logits [B, num_classes]

    def embed(self, x: Tensor) -> Tensor:
        """The features the head classifies [B, 2 * width * 49]: what a Frechet distance compares."""
        return self.features(x).flatten(1)


@dataclass
class TrainedClassifier:
    net: DigitClassifier
    test_accuracy: float  # on the held-out fifth of the data


def train_classifier(data: ImageSet, epochs: int = 3, batch_size: int = 64, seed: int = 0) -> TrainedClassifier:
    """Train on 4/5 of a labeled ImageSet, report accuracy on the other fifth. A few seconds for 5,000 digits."""
    if data.info.num_classes < 2:
        raise ValueError(f"{data.info.name} has no labels to train a classifier on")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(data), generator=g)
    n_test = len(data) // 5
    test, train = order[:n_test], order[n_test:]
    x = data.images.float() / 127.5 - 1
    y = data.labels
    net = DigitClassifier(data.info.shape[0], data.info.num_classes)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        perm = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(perm) - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(x[test]).argmax(1) == y[test]).float().mean())
    return TrainedClassifier(net, accuracy)


@torch.no_grad()
def classify_samples(net: nn.Module, samples: Tensor) -> dict[str, float]:
    """Mean top-class probability, classes covered and KL(class histogram || uniform) of samples in [-1, 1]."""
    probs = torch.cat([F.softmax(net(samples[i:i + 256]).float(), dim=1) for i in range(0, len(samples), 256)])
    k = probs.shape[1]
    hist = torch.bincount(probs.argmax(1), minlength=k).double()
    p = hist / hist.sum()
    kl = float((p[p > 0] * (p[p > 0] * k).log()).sum())
    return {"confidence": float(probs.max(1).values.mean()), "classes_covered": int((hist > 0).sum()),
            "kl_uniform": kl}


@torch.no_grad()
def classifier_frechet_distance(net: DigitClassifier, real: Tensor, fake: Tensor) -> float:
    """Frechet distance of the classifier's features of two image sets in [-1, 1] (an in-domain FID)."""
    from belamy.metrics.fid import features_to_statistics, frechet_distance

    def features(x: Tensor):
        return torch.cat([net.embed(x[i:i + 256]).double() for i in range(0, len(x), 256)]).numpy()

    return frechet_distance(*features_to_statistics(features(real)), *features_to_statistics(features(fake)))
