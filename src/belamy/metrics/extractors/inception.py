"""The Inception-v3 network of FID (Heusel et al. 2017) and the Inception Score (Salimans et al. 2016), as
TensorFlow's 2015-12-05 graph computes it.

Inception-v3 is Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision". The graph that
FID and IS were defined with differs from torchvision's Inception-v3 in three places, which pytorch-fid and
torch-fidelity patch in the same way (their FIDInceptionA/C/E blocks):
  - the average pools inside blocks A, C and the first E leave padding out of the average (count_include_pad=False),
    as TensorFlow's pooling does;
  - the last E block (Mixed_7c) pools its fourth branch with a max pool, not an average;
  - the classifier has 1008 outputs (1000 ImageNet classes and 8 unused ones).
Module names follow torchvision's, so the standard weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth,
converted from the TensorFlow graph) load with strict=True.

Outputs: the 2048-d average-pooled activations ("pool3", what FID compares) and the 1008 logits without the bias
of the final layer, which is what the original IS code multiplies out (pool3 times the weight matrix of
softmax/logits/MatMul) and what torch-fidelity calls "logits_unbiased".
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from belamy.metrics.cache import belamy_home
from belamy.metrics.extractors.base import EXTRACTORS, ExtractorError, ExtractorOptions, FeatureExtractor

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")  # shown in the missing-file message only: never fetched
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008


class MissingWeightsError(ExtractorError):
    """The Inception weights file is not where it was looked for; the message names where to put it."""


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3, TensorFlow's), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: Tensor) -> Tensor:
    # TensorFlow's 3x3 average pool with "SAME" padding averages only the pixels inside the image.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1, 5x5, double 3x3 and pooled branches -> 224 + pool_features channels."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): strided 3x3, strided double 3x3, max pool -> 480 + in channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorized 7x7 convolutions (Mixed_6b..e) -> 768 channels."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            bd = conv(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a) -> 512 + in channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 block with expanded 1x3/3x1 branches (Mixed_7b, Mixed_7c) -> 2048 channels.

    pool="avg" for Mixed_7b (TensorFlow's average pool), "max" for Mixed_7c: the FID graph max-pools there."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = _tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the FID graph. Input [B, 3, 299, 299] in 0..255; output (pool3 features [B, 2048],
    logits without bias [B, 1008]).

    Pixels are mapped by (x - 128) / 128, the graph's own first operations (torch-fidelity and clean-fid do the
    same; pytorch-fid's 2x/255 - 1 is 0.4% off)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_LOGITS)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        assert x.dim() == 4 and x.shape[1:] == (3, INPUT_SIZE, INPUT_SIZE), x.shape  # [B, 3, 299, 299]
        x = (x - 128) / 128
        # state size: 3 x 299 x 299 -> 64 x 147 x 147 -> 64 x 73 x 73
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        # -> 192 x 71 x 71 -> 192 x 35 x 35
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        # -> 288 x 35 x 35 -> 768 x 17 x 17 -> 2048 x 8 x 8
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool = x.mean(dim=(2, 3))  # [B, 2048]
        return pool, pool @ self.fc.weight.T  # logits without the bias, as the IS code computes them


def default_weights_paths() -> list[Path]:
    """Where the weights are looked for without --weights: BELAMY_HOME/weights/, .pth then .safetensors."""
    folder = belamy_home() / "weights"
    return [folder / WEIGHTS_FILE, folder / (Path(WEIGHTS_FILE).stem + ".safetensors")]


def find_weights(weights: str | Path | None = None) -> Path:
    """The weights file to load: `weights` if given (it must exist), else the first file of
    default_weights_paths() that exists. Never downloads: a missing file is a MissingWeightsError that says where
    to put it."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"Inception weights file not found: {path} (given as weights/--weights)")
        return path
    candidates = default_weights_paths()
    for path in candidates:
        if path.is_file():
            return path
    raise MissingWeightsError(
        f"Inception weights not found at {candidates[0]} (nor {candidates[1].name} beside it). belamy never "
        f"downloads anything: fetch {WEIGHTS_FILE} yourself (it is published at {WEIGHTS_URL}) and put it at "
        f"{candidates[0]}, or pass its path with --weights PATH (weights=PATH in Python); the folder is "
        f"$BELAMY_HOME/weights (BELAMY_HOME defaults to ~/.cache/belamy). A .safetensors file with the same "
        f"tensors works too. For labeled data (mnist, digits, a folder of class folders), --extractor classifier "
        f"needs no download.")


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors from a .pth/.pt file (torch.load with weights_only=True: no arbitrary pickle runs) or a
    .safetensors file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif suffix in (".pth", ".pt"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ExtractorError(f"{path}: weights must be a .pth, .pt or .safetensors file")
    except ExtractorError:
        raise
    except Exception as e:  # unpickling refusals, truncated files, safetensors' own errors
        raise ExtractorError(f"{path} cannot be read as weights: {type(e).__name__}: {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ExtractorError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(state)


def load_fid_inception(weights: str | Path | None = None) -> tuple[FIDInceptionV3, Path]:
    """FIDInceptionV3 with weights from `weights` or BELAMY_HOME (see find_weights), loaded with strict=True."""
    path = find_weights(weights)
    state = read_state_dict(path)
    net = FIDInceptionV3()
    # Some exports predate batch norm's num_batches_tracked counter; it never changes an eval-mode output.
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExtractorError(f"{path} does not fit the FID Inception-v3 network: {e}") from None
    return net, path


@EXTRACTORS.register("inception", "FID Inception-v3 (TF 2015-12-05 weights, local file): 2048-d pool3 + 1008 logits")
def inception_extractor(options: ExtractorOptions) -> FeatureExtractor:
    net, path = load_fid_inception(options.weights)
    return FeatureExtractor(net, "inception", input_size=INPUT_SIZE, input_channels=3, input_range=(0.0, 255.0),
                            resizer=options.resizer, device=options.device, details={"weights_file": str(path)})
