"""Typed run configuration: one dataclass, saved as YAML in the run folder, overridable from the CLI.

Fields left at `None` are "the recipe's default" and are resolved when the run starts, so that the saved
`config.yaml` always holds the concrete values the run used.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration value: the message names the field and the value."""


@dataclass
class TrainConfig:
    # What to train, on what
    model: str = "dcgan"  # recipe name (`belamy models`)
    data: str = "mnist"  # built-in data set (`belamy datasets`) or a folder of images
    resolution: int | None = None  # images are resized to this; None: the data set's own
    channels: int | None = None  # 1 or 3; None: the data set's own (3 for folders)
    options: dict[str, Any] = field(default_factory=dict)  # recipe options (`belamy models --verbose`)

    # How long, how fast
    batch_size: int | None = None  # None: the recipe's (64 for the image recipes)
    steps: int = 2000  # G updates
    epochs: float | None = None  # if set, overrides steps: epochs * len(data) / batch_size
    lr_g: float | None = None
    lr_d: float | None = None
    betas: tuple[float, float] | None = None  # Adam's (beta1, beta2)
    loss: str | None = None  # adversarial loss (minimax, nonsaturating, lsgan, hinge, wasserstein)
    d_steps: int | None = None  # D updates per G update (n_critic in WGAN)
    lr_decay: str | None = None  # "none", "linear" (to 0 at the last step) or "hold-linear" (constant for half the
    # steps, then linear to 0: CycleGAN's schedule); None: the recipe's
    ema_decay: float = 0.999  # EMA of G's weights, used for sampling; 0 disables
    seed: int = 0

    # Speed
    device: str = "auto"  # auto, cpu, cuda, mps
    precision: str = "auto"  # auto (bf16 autocast for conv nets where the hardware has bf16), fp32, bf16, fp16 (CUDA)
    channels_last: bool = True  # NHWC memory format for conv nets
    workers: int = 0  # DataLoader processes for folders that are decoded on the fly
    cache: bool | None = None  # keep decoded folder images in memory; None: when they fit in 2 GiB

    # Health (train/health.py): when a loss or weight turns non-finite ("nonfinite") or also when an alert fires
    # ("alerts"), roll back to the newest checkpoint, multiply the learning rates by recover_lr_factor, continue.
    recover: str = "nonfinite"  # none | nonfinite | alerts
    recover_lr_factor: float = 0.5
    max_recoveries: int = 3

    # Several processes (torchrun; train/distributed.py). batch_size above is the global batch.
    sync_bn: bool = False  # batch norm statistics over the global batch instead of each rank's slice
    dist_timeout: float = 300.0  # seconds a collective waits for the other ranks before the job fails

    # Data handling
    hflip: bool = False  # random horizontal flips of real images
    strict_data: bool = False  # scan the whole folder at start-up and refuse bad files instead of skipping them

    # Run folder, logs, checkpoints
    name: str | None = None  # run folder name; None: <model>-<data>[-N]
    out: str = "runs"
    log_every: int = 50
    sample_every: int = 500  # sample grid from fixed latents every N steps (0: only at the end)
    ckpt_every: int = 500  # checkpoint every N steps (0: only at the end)
    keep_ckpts: int = 3  # the last K checkpoints are kept
    n_samples: int = 64  # images in each sample grid

    # Measuring during training (belamy.metrics): every eval_every steps, on eval_n samples of the EMA generator
    # against the training data; the generator with the best FID so far is kept in RUN/best/ (a model folder).
    eval_every: int = 0  # 0: never
    eval_metrics: str = "fid"  # comma-separated: fid, kid, pr, dc, is, classes (belamy eval --help)
    eval_n: int = 2000
    eval_extractor: str = "auto"  # auto (the classifier for labeled data sets, else inception), classifier, inception
    eval_weights: str | None = None  # Inception weights file (else BELAMY_HOME)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["betas"] is not None:
            d["betas"] = list(d["betas"])
        return d

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "TrainConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(fields)}")
        hints = typing.get_type_hints(cls)
        values = {name: _coerce(value, hints[name], f"{source}: field {name!r}") for name, value in d.items()}
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of field: value, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def replace(self, **overrides: Any) -> "TrainConfig":
        merged = self.to_dict()
        for key, value in overrides.items():
            if key == "options":
                merged["options"] = {**merged["options"], **value}
            else:
                merged[key] = value
        return TrainConfig.from_dict(merged, source="override")

    def validate(self) -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if value is not None and (value < 0 or (value == 0 and not allow_zero)):
                raise ConfigError(f"field {name!r} must be {'>= 0' if allow_zero else '> 0'}, got {value}")

        for name in ("batch_size", "steps", "log_every", "keep_ckpts", "n_samples", "lr_g", "lr_d", "d_steps",
                     "resolution", "epochs"):
            positive(name)
        for name in ("sample_every", "ckpt_every", "workers", "eval_every"):
            positive(name, allow_zero=True)
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"field 'channels' must be 1 or 3, got {self.channels}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"field 'ema_decay' must be in [0, 1), got {self.ema_decay}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(f"field 'precision' must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        positive("dist_timeout")
        positive("eval_n")
        positive("max_recoveries", allow_zero=True)
        if self.recover not in ("none", "nonfinite", "alerts"):
            raise ConfigError(f"field 'recover' must be none, nonfinite or alerts, got {self.recover!r}")
        if not 0.0 < self.recover_lr_factor <= 1.0:
            raise ConfigError(f"field 'recover_lr_factor' must be in (0, 1], got {self.recover_lr_factor}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ConfigError(f"field 'device' must be auto, cpu, cuda[:N] or mps, got {self.device!r}")
        if self.lr_decay not in (None, "none", "linear", "hold-linear"):
            raise ConfigError(f"field 'lr_decay' must be none, linear or hold-linear, got {self.lr_decay!r}")
        if self.betas is not None and not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"field 'betas' must be two numbers in [0, 1), got {self.betas}")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ConfigError(f"field 'name' must be a plain folder name, got {self.name!r}")


def parse_value(text: str) -> Any:
    """A CLI string -> a YAML scalar or list ("3" -> 3, "1e-4" -> 0.0001, "[0.5, 0.9]" -> [0.5, 0.9], "true")."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads "1e-4" as a string: accept it as the float a person meant.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check and convert a YAML/CLI value to a field's declared type; errors name the field and the value."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where} expects {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} expects a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} expects true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{where} expects an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where} expects a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} expects a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported type {hint}")
