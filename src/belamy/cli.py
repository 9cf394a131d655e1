"""The `belamy` command: a thin layer that parses flags, calls the library, and prints where results are."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from belamy.config import ConfigError, parse_value

# train flags -> TrainConfig fields; flags left out do not override the --config file or the defaults.
TRAIN_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--model", "model", {"help": "recipe (belamy models); default dcgan"}),
    ("--data", "data", {"help": "built-in data set (belamy datasets) or a folder of images; default mnist"}),
    ("--resolution", "resolution", {"type": int, "help": "image size (base * 2^k: 8, 16, 28, 32, 64, ...)"}),
    ("--channels", "channels", {"type": int, "choices": (1, 3), "help": "1 (grayscale) or 3 (RGB)"}),
    ("--batch-size", "batch_size", {"type": int}),
    ("--steps", "steps", {"type": int, "help": "generator updates"}),
    ("--epochs", "epochs", {"type": float, "help": "passes over the data (instead of --steps)"}),
    ("--lr-g", "lr_g", {"type": float}),
    ("--lr-d", "lr_d", {"type": float}),
    ("--betas", "betas", {"type": float, "nargs": 2, "metavar": ("B1", "B2"), "help": "Adam betas"}),
    ("--loss", "loss", {"help": "minimax, nonsaturating, lsgan, hinge or wasserstein; default: the recipe's"}),
    ("--d-steps", "d_steps", {"type": int, "help": "D updates per G update (n_critic)"}),
    ("--lr-decay", "lr_decay", {"choices": ("none", "linear")}),
    ("--ema-decay", "ema_decay", {"type": float, "help": "EMA of G for sampling; 0 disables"}),
    ("--seed", "seed", {"type": int}),
    ("--name", "name", {"help": "run folder name (default <model>-<data>)"}),
    ("--out", "out", {"help": "folder of run folders (default runs)"}),
    ("--log-every", "log_every", {"type": int}),
    ("--sample-every", "sample_every", {"type": int}),
    ("--ckpt-every", "ckpt_every", {"type": int}),
    ("--keep-ckpts", "keep_ckpts", {"type": int}),
    ("--n-samples", "n_samples", {"type": int, "help": "images per sample grid"}),
    ("--device", "device", {"help": "auto, cpu, cuda[:N] or mps"}),
    ("--precision", "precision", {"choices": ("auto", "fp32", "bf16")}),
    ("--workers", "workers", {"type": int, "help": "data loader processes for on-the-fly folders"}),
]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a GAN (no flags: the demo, DCGAN on mnist)",
                       argument_default=argparse.SUPPRESS)
    for flag, _, kwargs in TRAIN_FLAGS:
        p.add_argument(flag, **kwargs)
    p.add_argument("--config", help="a YAML file of TrainConfig fields; flags override it")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="a recipe option, e.g. -o latent_dim=64 (belamy models --verbose lists them)")
    p.add_argument("--hflip", action="store_true", help="random horizontal flips of real images")
    p.add_argument("--strict-data", action="store_true", help="refuse unreadable files at start-up")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, help="decode a folder into memory")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = vars(args)
    overrides = {field: given[field] for _, field, _ in TRAIN_FLAGS if field in given}
    if "betas" in overrides:
        overrides["betas"] = tuple(overrides["betas"])
    for flag, field in (("hflip", "hflip"), ("strict_data", "strict_data")):
        if given.get(flag):
            overrides[field] = True
    if given.get("no_channels_last"):
        overrides["channels_last"] = False
    if "cache" in given:
        overrides["cache"] = given["cache"]
    options = {}
    for item in given.get("option") or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = parse_value(value)
    if options:
        overrides["options"] = options
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    import belamy

    overrides = _train_overrides(args)
    run = belamy.train(getattr(args, "config", None), resume=getattr(args, "resume", None),
                       overwrite=getattr(args, "overwrite", False), progress=not getattr(args, "no_progress", False),
                       **overrides)
    print(f"run:         {run.path}")
    print(f"samples:     {run.path / 'samples.png'}  (and {run.path / 'samples'}/ over time)")
    print(f"config:      {run.path / 'config.yaml'}")
    print(f"log:         {run.path / 'log.jsonl'}")
    print(f"checkpoints: {run.path / 'checkpoints'}  (continue with: belamy train --resume {run.path})")
    print(f"model:       {run.path / 'model.safetensors'} + config.json  (belamy sample {run.path})")
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate images from a trained run")
    p.add_argument("run", help="run folder (runs/NAME) or model folder")
    p.add_argument("--n", type=int, default=64, help="how many images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class", dest="class_label", help="class index or name (conditional models)")
    p.add_argument("--out", help="grid PNG (default RUN/sample.png)")
    p.add_argument("--out-dir", help="write one PNG per image into this folder instead of a grid")
    p.add_argument("--nrow", type=int, help="images per grid row")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    import belamy
    from belamy.utils.images import save_png

    g = belamy.load(args.run, device=args.device)
    samples = g.sample(args.n, seed=args.seed, class_label=args.class_label, batch_size=args.batch_size)
    meta = {"Software": "belamy", "model": str(args.run), "seed": str(args.seed),
            "class": "" if args.class_label is None else str(args.class_label)}
    if args.out_dir:
        for i, image in enumerate(g.sample_images(args.n, args.seed, args.class_label, args.batch_size)):
            save_png(image, Path(args.out_dir) / f"{args.seed:06d}-{i:05d}.png", {**meta, "index": str(i)})
        print(f"wrote {args.n} images to {args.out_dir}")
        return 0
    out = Path(args.out or Path(args.run) / "sample.png")
    save_png(g.grid(samples, args.nrow), out, meta)
    print(f"wrote {out}")
    return 0


def _add_interpolate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpolate", help="a latent walk (slerp) between random latents")
    p.add_argument("run")
    p.add_argument("--steps", type=int, default=8, help="images per walk")
    p.add_argument("--rows", type=int, default=4, help="number of walks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class", dest="class_label")
    p.add_argument("--out", help="PNG (default RUN/walk.png)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args: argparse.Namespace) -> int:
    import belamy
    from belamy.utils.images import make_grid, save_png

    g = belamy.load(args.run, device=args.device)
    g._require_images()
    walk = g.interpolate(args.steps, seed=args.seed, rows=args.rows, class_label=args.class_label)
    out = Path(args.out or Path(args.run) / "walk.png")
    save_png(make_grid(walk, nrow=args.steps), out, {"Software": "belamy", "seed": str(args.seed)})
    print(f"wrote {out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import dataclasses

    from belamy.recipes import RECIPES

    for name in RECIPES.names():
        recipe = RECIPES.get(name)
        print(f"{name:10s} {RECIPES.summary(name)}")
        if args.verbose:
            d = recipe.defaults
            print(f"{'':10s}   defaults: loss={d.loss} lr_g={d.lr_g} lr_d={d.lr_d} betas={d.betas} "
                  f"d_steps={d.d_steps} batch_size={d.batch_size} lr_decay={d.lr_decay}")
            opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(recipe.Options))
            print(f"{'':10s}   options:  {opts}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from belamy.data import DATASETS

    for name in DATASETS.names():
        print(f"{name:10s} {DATASETS.summary(name)}")
    print(f"{'PATH':10s} any folder of png/jpg/jpeg/webp/bmp images (class = first-level subfolder)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from belamy import __version__

    parser = argparse.ArgumentParser(prog="belamy", description="Train, evaluate and use GANs.")
    parser.add_argument("--version", action="version", version=f"belamy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_interpolate(sub)
    p = sub.add_parser("models", help="list the GAN recipes")
    p.add_argument("--verbose", "-v", action="store_true", help="show defaults and options")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("datasets", help="list the built-in data sets")
    p.set_defaults(func=cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from belamy.data.base import DataError
    from belamy.pipelines.generator import LoadError
    from belamy.registry import UnknownNameError
    from belamy.train.checkpoint import CheckpointError
    from belamy.train.loop import TrainingDiverged

    try:
        return args.func(args)
    except (ConfigError, DataError, LoadError, UnknownNameError, CheckpointError, TrainingDiverged, ValueError) as e:
        print(f"belamy {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"belamy {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
