"""What the metrics API measures: any image set or feature set, turned into a FeatureSet batch by batch.

Accepted inputs (`open_source`):
    "mnist", "digits", ...        a built-in data set (all its images; reference statistics cached)
    "path/to/folder"              a folder of images (decoded batch by batch; statistics cached by file listing)
    "path/to/stats.npz"           a statistics file (belamy's, or mu/sigma from pytorch-fid / clean-fid)
    "runs/NAME" or a model folder a trained generator (`belamy.load`), sampled batch by batch
    GeneratorPipeline             the same, already loaded
    uint8 or [-1, 1] float tensor images [N, C, H, W] (a numpy array works too)
    numpy array / tensor [N, D]   feature vectors, used as they are
    FeatureSet                    used as it is
Images never sit in memory all at once for generators and folders: each batch goes through the extractor and only
its feature vectors are kept (N x D floats: 80 MB for 10,000 Inception features).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from belamy.data.base import ImageSet
from belamy.metrics.cache import home_dir, safe_name
from belamy.metrics.extractors.base import FeatureExtractor
from belamy.metrics.fid import StreamingStatistics, as_float64_features
from belamy.metrics.reference import FeatureSet, Fingerprint, StatsFileError, load_stats, save_stats
from belamy.pipelines.generator import GeneratorPipeline

DEFAULT_N = 10_000  # generator samples when n is not given (the common FID-10k; FID-50k needs n=50000)
SUBSET_SEED = 0  # the seed of the random subset taken when fewer real images than a set holds are asked for


class SourceError(ValueError):
    """An input the metrics API cannot measure; the message names it and what is accepted."""


@dataclass
class ImageSource:
    """Images to measure: where from (for the fingerprint), how many, and a stream of batches."""

    dataset: str  # fingerprint's dataset: a built-in name, a folder path, "run:NAME", "tensor"
    split: str
    count: int
    resolution: int
    channels: int
    # batch_size, channels the extractor takes -> uint8 or [-1, 1] float batches [B, C, H, W]; folders decode to
    # that channel count (the others convert in the extractor)
    batches: Callable[[int, int], Iterator[Tensor]]
    num_classes: int = 0
    labeled: Callable[[], ImageSet] | None = None  # all images with labels, to train the classifier on
    cache_key: str | None = None  # identity of the exact images, for BELAMY_HOME/stats; None: never cached
    skipped: list[str] = field(default_factory=list)  # 'path: reason' of files that could not be decoded
    intended_labels: np.ndarray | None = None  # a conditional generator: the class asked for, image by image


Source = ImageSource | FeatureSet


# --- opening inputs ----------------------------------------------------------------------------------------------

def is_run_folder(path: Path) -> bool:
    """A belamy run folder or model folder (what `belamy.load` opens), as opposed to a folder of images."""
    return path.is_dir() and ((path / "config.json").is_file() or (path / "checkpoints").is_dir())


def open_source(x: Any, *, n: int | None = None, seed: int = 0, resolution: int | None = None,
                channels: int | None = None, device: str = "cpu") -> Source:
    """An input as an ImageSource (to be measured) or a FeatureSet (already measured); see the module docstring.

    n: how many images to measure (generators: DEFAULT_N when None; data sets, folders and tensors: all when None,
    else a random subset of n); resolution: the side data sets and folders are read at (None: their own);
    channels: data sets' channel count (None: their own)."""
    if n is not None and n < 2:
        raise SourceError(f"n must be at least 2 (a covariance needs two samples), got {n}")
    if isinstance(x, FeatureSet):
        return x
    if isinstance(x, GeneratorPipeline):
        return _generator_source(x, n, seed, str(x.config.get("run") or "generator"))
    if isinstance(x, (np.ndarray, Tensor)):
        return _array_source(x, n, seed)
    if isinstance(x, (str, os.PathLike)):
        return _path_source(str(x), n, seed, resolution, channels, device)
    raise SourceError(f"cannot measure a {type(x).__name__}: give a data set name, a folder of images, a .npz "
                      f"statistics file, a run folder or GeneratorPipeline, an image tensor [N, C, H, W] or "
                      f"feature vectors [N, D]")


def _path_source(spec: str, n: int | None, seed: int, resolution: int | None, channels: int | None,
                 device: str) -> Source:
    from belamy.data import DATASETS

    if spec in DATASETS:
        return _dataset_source(spec, n, resolution, channels)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise SourceError(f"statistics file not found: {path}")
        stats = load_stats(path)
        return _subset_features(stats, n, seed) if n is not None else stats
    if is_run_folder(path):
        from belamy.pipelines.loading import load_pipeline

        return _generator_source(load_pipeline(path, device), n, seed, path.name)
    if path.is_dir():
        return _folder_source(path, n, seed, resolution, channels)
    if not path.exists() and "/" not in spec and "\\" not in spec:
        raise SourceError(f"{DATASETS.unknown_message(spec)} (or give a folder of images, a run folder or a .npz "
                          f"statistics file)")
    raise SourceError(f"{path} is not a folder of images, a run folder or a .npz statistics file")


def _subset_indices(total: int, n: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a random subset of n out of total (None: all); more than there are is an error."""
    if n is None or n == total:
        return None
    if n > total:
        raise SourceError(f"asked for {n} images, but the set holds only {total}")
    return np.sort(np.random.RandomState(seed).permutation(total)[:n])


def _dataset_source(name: str, n: int | None, resolution: int | None, channels: int | None) -> ImageSource:
    from belamy.data import open_data

    data = open_data(name, resolution, channels)
    if not isinstance(data, ImageSet):
        raise SourceError(f"{name} holds 2-D points, not images: image metrics do not apply (see "
                          f"belamy.metrics.mode_coverage)")
    full = data
    rows = _subset_indices(len(data), n, SUBSET_SEED)
    if rows is not None:
        idx = torch.from_numpy(rows)
        data = ImageSet(data.info, data.images[idx], data.labels[idx])
    images = data.images

    def batches(batch_size: int, _channels: int) -> Iterator[Tensor]:
        for i in range(0, len(images), batch_size):
            yield images[i:i + batch_size]

    c, h, _ = data.info.shape
    key = f"dataset|{name}|{tuple(data.info.shape)}|{len(data)}|{SUBSET_SEED if rows is not None else 'all'}"
    # The classifier always learns from the whole set (and the same one for every subset size).
    return ImageSource(name, "train", len(data), h, c, batches, data.info.num_classes, lambda: full, key)


def _native_resolution(path: Path) -> int:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return min(im.size)
    except Exception as e:  # the first file may be bad; the folder reader would skip it, but a size is needed
        raise SourceError(f"cannot read {path} to find the folder's image size ({e}); pass resolution=") from None


def _folder_source(path: Path, n: int | None, seed: int, resolution: int | None,
                   channels: int | None) -> ImageSource:
    from belamy.data.folder import FolderImages, decode_folder

    probe = FolderImages(path, 3, 8)  # lists the files (and classes) only; nothing is decoded here
    res = resolution or _native_resolution(probe.paths[0])
    rows = _subset_indices(len(probe), n, seed)
    indices = list(range(len(probe))) if rows is None else rows.tolist()
    root = str(path.resolve())
    listing = hashlib.sha256()
    for i in indices:  # the files measured, and their sizes and times: edit a file and the cache misses
        st = probe.paths[i].stat()
        listing.update(f"{probe.paths[i].relative_to(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    skipped: list[str] = []  # 'path: reason' of each bad file: reported, never fatal

    def batches(batch_size: int, want_channels: int) -> Iterator[Tensor]:
        folder = FolderImages(path, channels or want_channels, res)
        for start in range(0, len(indices), batch_size):
            good = []
            for i in indices[start:start + batch_size]:
                image, label_or_reason = folder[i]
                if image is None:
                    skipped.append(label_or_reason)
                else:
                    good.append(image)
            if good:
                yield torch.stack(good)

    def labeled() -> ImageSet:  # every file with its class, for the classifier to learn from
        return decode_folder(FolderImages(path, channels or 3, res))

    return ImageSource(root, "all", len(indices), res, channels or 3, batches, probe.info.num_classes,
                       labeled if probe.info.num_classes >= 2 else None,
                       cache_key=f"folder|{root}|{res}|{listing.hexdigest()}", skipped=skipped)


def _generator_source(g: GeneratorPipeline, n: int | None, seed: int, name: str) -> ImageSource:
    if not g.data.is_image:
        raise SourceError(f"{name} generates points of shape {g.data.shape}, not images: image metrics do not "
                          f"apply (see belamy.metrics.mode_coverage)")
    n = DEFAULT_N if n is None else n
    c, h, _ = g.data.shape

    def batches(batch_size: int, _channels: int) -> Iterator[Tensor]:
        z = g.latents(n, seed)  # the latents of g.sample(n, seed): the same images whatever the batch size
        for i in range(0, n, batch_size):
            rows = torch.arange(i, min(i + batch_size, n))
            # conditional models: one of each class in turn, the order g.sample uses
            labels = rows % g.num_classes if g.num_classes else None
            yield g.from_latents(z[rows], labels, batch_size)

    intended = np.arange(n) % g.num_classes if g.num_classes else None
    return ImageSource(f"run:{name}", f"samples seed={seed}", n, h, c, batches, intended_labels=intended)


def _array_source(x: np.ndarray | Tensor, n: int | None, seed: int) -> Source:
    if x.ndim == 2:  # feature vectors [N, D]
        features = as_float64_features(x, "features")
        stats = FeatureSet(Fingerprint(dataset="features", split="given", n=len(features),
                                       feature_dim=features.shape[1]), features=features, source="feature array")
        return _subset_features(stats, n, seed) if n is not None else stats
    if x.ndim != 4:
        raise SourceError(f"arrays must be images [N, C, H, W] or feature vectors [N, D], got shape {tuple(x.shape)}")
    images = torch.as_tensor(x)
    if images.dtype != torch.uint8:
        if not images.is_floating_point():
            raise SourceError(f"image tensors must be uint8 or floats in [-1, 1], got {images.dtype}")
        lo, hi = float(images.min()), float(images.max())
        if lo < -1.001 or hi > 1.001:
            raise SourceError(f"float images must lie in [-1, 1] (belamy's convention), got values in "
                              f"[{lo:.3g}, {hi:.3g}]; pass uint8 for 0..255")
    rows = _subset_indices(len(images), n, seed)
    if rows is not None:
        images = images[torch.from_numpy(rows)]
    if images.shape[1] not in (1, 3):
        raise SourceError(f"images must have 1 or 3 channels ([N, C, H, W]), got shape {tuple(images.shape)}")

    def batches(batch_size: int, _channels: int) -> Iterator[Tensor]:
        for i in range(0, len(images), batch_size):
            yield images[i:i + batch_size]

    return ImageSource("tensor", "given", len(images), int(images.shape[-1]), int(images.shape[1]), batches)


def _subset_features(stats: FeatureSet, n: int, seed: int) -> FeatureSet:
    feats = stats.require_features(f"taking {n} of the samples")
    rows = _subset_indices(len(feats), n, seed)
    if rows is None:
        return stats
    fp = Fingerprint(**{**stats.fingerprint.to_json(), "n": n})
    logits = None if stats.logits is None else stats.logits[rows]
    return FeatureSet(fp, feats[rows], logits, extractor=stats.extractor, source=stats.source)


def training_data_of(run: str | Path) -> str:
    """The data a run was trained on (config.json's train_config.data, else config.yaml's `data`)."""
    path = Path(run)
    config_json, config_yaml = path / "config.json", path / "config.yaml"
    try:
        if config_json.is_file():
            data = json.loads(config_json.read_text()).get("train_config", {}).get("data")
            if data:
                return str(data)
        if config_yaml.is_file():
            import yaml

            data = (yaml.safe_load(config_yaml.read_text()) or {}).get("data")
            if data:
                return str(data)
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read the training config of {path}: {e}") from None
    raise SourceError(f"{path} names no training data (no config.json with train_config, no config.yaml): "
                      f"give the real images explicitly (--real)")


# --- measuring -----------------------------------------------------------------------------------------------------

@torch.no_grad()
def measure(source: ImageSource, extractor: FeatureExtractor, batch_size: int = 64, progress: bool = False,
            cache: bool = True) -> FeatureSet:
    """Features, logits and (mu, sigma) of every image of `source`, streamed batch by batch through `extractor`.

    Sources with a cache_key (built-in data sets, folders) are kept in BELAMY_HOME/stats/ and read back on the next
    call when their fingerprint matches field for field; anything else is measured again and overwrites the file."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    expected = Fingerprint(source.dataset, source.split, source.count, source.resolution, extractor.resizer,
                           extractor.name, extractor.weights_sha256)
    cache_path = _cache_path(source, expected) if cache and source.cache_key else None
    if cache_path is not None and cache_path.is_file():
        try:
            stats = load_stats(cache_path)
            got = stats.fingerprint
            if stats.features is not None and all(getattr(got, k) == getattr(expected, k)
                                                  for k in ("dataset", "split", "resolution", "resizer",
                                                            "extractor", "weights_sha256")):
                stats.source = str(cache_path)
                return stats
        except StatsFileError:
            pass  # unreadable: measured again and rewritten below

    stream = StreamingStatistics()  # float64 mean and covariance, merged batch by batch (Chan et al. 1979)
    features: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    total = -(-source.count // batch_size)
    from tqdm import tqdm

    for images in tqdm(source.batches(batch_size, extractor.input_channels), total=total, disable=not progress,
                       desc=f"features of {source.dataset}", unit="batch", leave=False):
        f, lg = extractor(images)
        f_np = f.numpy()
        stream.update(f_np)
        features.append(f_np)
        if lg is not None:
            logits.append(lg.numpy())
    if stream.count < 2:
        raise SourceError(f"{source.dataset}: {stream.count} image(s) could be measured; at least 2 are needed"
                          + (f" ({len(source.skipped)} file(s) could not be decoded)" if source.skipped else ""))
    feats = np.concatenate(features)
    mu, sigma = stream.statistics()
    fingerprint = Fingerprint(source.dataset, source.split, len(feats), source.resolution, extractor.resizer,
                              extractor.name, extractor.weights_sha256, int(feats.shape[1]))
    stats = FeatureSet(fingerprint, feats, np.concatenate(logits) if logits else None, mu, sigma,
                       extractor.info(), source=source.dataset, labels=source.intended_labels)
    if cache_path is not None:
        save_stats(cache_path, stats)
        stats.source = str(cache_path)
    return stats


def _cache_path(source: ImageSource, expected: Fingerprint) -> Path:
    key = json.dumps([source.cache_key, expected.to_json()], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return home_dir("stats") / f"{safe_name(source.dataset)}-{expected.extractor}-{digest}.npz"
