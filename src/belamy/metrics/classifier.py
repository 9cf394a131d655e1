"""A small in-domain digit classifier: an offline yardstick for samples of labeled image data.

Where no Inception weights are at hand (tests, CI, a laptop without internet), "does a trained classifier recognize
the samples?" is the usual MNIST-like measure: its confidence on samples and the histogram of predicted classes
(mode coverage) both move as a GAN learns.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from belamy.data.base import ImageSet


class DigitClassifier(nn.Module):
    """Two conv layers and a linear head; input [B, C, H, W] in [-1, 1] at any resolution (pooled to 7x7).

    hidden > 0 puts a fully connected layer of that width before the head (LeNet's shape): its activations are a
    compact embedding for Frechet distance, KID and k-NN metrics (128-d instead of 2 * width * 49)."""

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 32, hidden: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(7),
        )
        self.hidden = nn.Linear(2 * width * 49, hidden) if hidden else None
        self.head = nn.Linear(hidden or 2 * width * 49, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))  # logits [B, num_classes]

    def embed(self, x: Tensor) -> Tensor:
        """The features the head classifies [B, hidden or 2 * width * 49]: what a Frechet distance compares."""
        h = self.features(x).flatten(1)
        return h if self.hidden is None else F.relu(self.hidden(h))

    def embed_and_classify(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(features, logits) in one pass: what a feature extractor returns."""
        h = self.embed(x)
        return h, self.head(h)


@dataclass
class TrainedClassifier:
    net: DigitClassifier
    test_accuracy: float  # on the held-out fifth of the data
    feature_scale: float = 1.0  # RMS of the embedding over the data (load_or_train_classifier divides by it)
    cached: bool = False  # loaded from BELAMY_HOME/classifiers instead of trained (load_or_train_classifier)
    path: str | None = None  # the cached weights file, when there is one
    key: str = ""  # the cache key: sha256 of the data's hash and the code's hash


def train_classifier(data: ImageSet, epochs: int = 3, batch_size: int = 64, seed: int = 0, width: int = 32,
                     hidden: int = 0, lr: float = 1e-3) -> TrainedClassifier:
    """Train on 4/5 of a labeled ImageSet, report accuracy on the other fifth. A few seconds for 5,000 digits."""
    if data.info.num_classes < 2:
        raise ValueError(f"{data.info.name} has no labels to train a classifier on")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=g)
    n_test = len(data) // 5
    test, train = order[:n_test], order[n_test:]
    x = data.images.float() / 127.5 - 1
    net = fit_classifier(x[train], data.labels[train], data.info.num_classes, epochs, batch_size, seed, width,
                         hidden, lr)
    return TrainedClassifier(net, classifier_accuracy(net, x[test], data.labels[test]))


def fit_classifier(x: Tensor, y: Tensor, num_classes: int, epochs: int = 3, batch_size: int = 64, seed: int = 0,
                   width: int = 32, hidden: int = 0, lr: float = 1e-3) -> DigitClassifier:
    """A DigitClassifier trained on images x [N, C, H, W] in [-1, 1] with labels y [N] (Adam, cross-entropy); in
    eval mode. Seeded: the same data give the same network."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, leaving the caller's RNG as it was
        torch.manual_seed(seed)
        net = DigitClassifier(x.shape[1], num_classes, width, hidden)
    opt = torch.optim.Adam(net.parameters(), lr)
    batch_size = min(batch_size, len(x))
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(perm) - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def classifier_accuracy(net: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of net on images x in [-1, 1] with labels y."""
    predictions = torch.cat([net(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    return float((predictions == y).float().mean())


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


# --- the cached in-domain classifier (the "classifier" feature extractor) -------------------------------------

@dataclass(frozen=True)
class ClassifierConfig:
    """How the evaluation classifier is built and trained; part of its cache key."""

    width: int = 32
    hidden: int = 128  # the embedding that metrics compare (see DigitClassifier)
    min_steps: int = 200  # epochs grow on small sets until this many updates (digits: 1,437 training images)
    min_epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0

    def epochs(self, n_images: int) -> int:
        steps_per_epoch = max(1, (n_images - n_images // 5) // self.batch_size)
        return max(self.min_epochs, -(-self.min_steps // steps_per_epoch))


def data_sha256(data: ImageSet) -> str:
    """sha256 of a labeled set's images and labels (bytes, shapes and dtypes): what the classifier learned from."""
    h = hashlib.sha256()
    for t in (data.images, data.labels):
        t = t.contiguous()
        h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    h.update(json.dumps(list(data.info.class_names)).encode())
    return h.hexdigest()


def _code_sha256(config: ClassifierConfig) -> str:
    """sha256 of the code and hyper-parameters that make the classifier: editing either retrains it."""
    h = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    for obj in (DigitClassifier, train_classifier):
        try:
            h.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):  # no source at hand (a frozen build): the version stands in for it
            from belamy import __version__

            h.update(__version__.encode())
    return h.hexdigest()


def load_or_train_classifier(data: ImageSet, name: str, config: ClassifierConfig = ClassifierConfig(),
                             folder: Path | None = None) -> TrainedClassifier:
    """The classifier of a labeled set, trained once and kept in `folder` (BELAMY_HOME/classifiers by default).

    The cache key is sha256(hash of the images and labels, hash of this file's classifier code and `config`), so
    other data, another resolution or channel count, or changed code trains a new one, and the same data under
    another name reuses it. Files: KEY.safetensors (weights) and KEY.json (accuracy, hashes, shapes), written
    atomically, the JSON last: a crash between the two leaves no JSON, and the next call trains again."""
    from safetensors.torch import load_file

    from belamy.metrics.cache import home_dir, safe_name
    from belamy.train.checkpoint import save_file_atomic, write_json_atomic

    data_hash, code_hash = data_sha256(data), _code_sha256(config)
    key = hashlib.sha256(f"{data_hash}|{code_hash}".encode()).hexdigest()
    folder = Path(folder) if folder is not None else home_dir("classifiers")
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{safe_name(name)}-{key[:16]}"
    weights_path, meta_path = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    channels, num_classes = data.info.shape[0], data.info.num_classes
    if meta_path.is_file() and weights_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("key") == key:
                net = DigitClassifier(channels, num_classes, config.width, config.hidden)
                net.load_state_dict(load_file(str(weights_path)), strict=True)
                return TrainedClassifier(net.eval(), float(meta["test_accuracy"]), float(meta["feature_scale"]),
                                         cached=True, path=str(weights_path), key=key)
        except (OSError, ValueError, KeyError, RuntimeError):
            pass  # an unreadable or stale entry is trained again and overwritten, never trusted
    trained = train_classifier(data, epochs=config.epochs(len(data)), batch_size=config.batch_size,
                               seed=config.seed, width=config.width, hidden=config.hidden, lr=config.lr)
    scale = embedding_rms(trained.net, data)
    tensors = {k: v.detach().contiguous().cpu() for k, v in trained.net.state_dict().items()}
    save_file_atomic(tensors, weights_path, metadata={"format": "pt"})
    write_json_atomic(meta_path, {
        "key": key, "data": name, "data_sha256": data_hash, "code_sha256": code_hash, "config": asdict(config),
        "shape": list(data.info.shape), "num_classes": num_classes, "images": len(data),
        "test_images": len(data) // 5, "test_accuracy": trained.test_accuracy, "feature_scale": scale,
    })
    return TrainedClassifier(trained.net, trained.test_accuracy, scale, cached=False, path=str(weights_path),
                             key=key)


@torch.no_grad()
def embedding_rms(net: DigitClassifier, data: ImageSet, batch_size: int = 512) -> float:
    """sqrt(mean of squared embedding values) over all of `data`: the scale the feature extractor divides by.

    A ReLU layer's scale is arbitrary (it differs from one training to the next), while KID's kernel
    (x.y / D + 1)^3 assumes values of order 1, as Inception's are; dividing by this RMS gives them that order."""
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        e = net.embed(data.images[i:i + batch_size].float() / 127.5 - 1).double()
        total += float((e * e).sum())
        count += e.numel()
    return max(total / max(count, 1), 1e-24) ** 0.5
