"""The `belamy` command: a thin layer that parses flags, calls the library, and prints where results are."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from belamy.config import ConfigError, parse_value

# train flags -> TrainConfig fields; flags left out do not override the --config file or the defaults.
TRAIN_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--model", "model", {"help": "recipe (belamy models); default dcgan"}),
    ("--data", "data", {"help": "built-in data set (belamy datasets; NAME:SPLIT a split, NAME@N N items of a "
                                "procedural set such as shapes) or a folder of images; default mnist"}),
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
    ("--lr-decay", "lr_decay", {"choices": ("none", "linear", "hold-linear")}),
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
    ("--precision", "precision", {"choices": ("auto", "fp32", "bf16", "fp16"),
                                  "help": "autocast dtype; fp16 (CUDA) adds loss scaling; default auto"}),
    ("--workers", "workers", {"type": int, "help": "data loader processes for on-the-fly folders"}),
    ("--dist-timeout", "dist_timeout", {"type": float, "help": "seconds a rank waits for the others (torchrun)"}),
    ("--eval-every", "eval_every", {"type": int, "help": "measure the EMA generator every N steps; keeps RUN/best"}),
    ("--eval-metrics", "eval_metrics", {"help": "comma-separated, default fid (fid,kid,pr,dc,is,classes)"}),
    ("--eval-n", "eval_n", {"type": int, "help": "samples per evaluation (default 2000)"}),
    ("--eval-extractor", "eval_extractor", {"help": "auto, classifier or inception"}),
    ("--eval-weights", "eval_weights", {"help": "Inception weights file for --eval-extractor inception"}),
    ("--recover", "recover", {"choices": ("none", "nonfinite", "alerts"),
                              "help": "roll back to the last checkpoint with lower learning rates on non-finite "
                                      "values (default) or also on health alerts"}),
    ("--recover-lr-factor", "recover_lr_factor", {"type": float, "help": "learning-rate factor per recovery"}),
    ("--max-recoveries", "max_recoveries", {"type": int}),
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
    p.add_argument("--sync-bn", action="store_true", help="batch norm over the global batch (several processes)")
    p.add_argument("--nproc", type=int, help="train in N processes on this machine (launches torchrun); with "
                   "torchrun, launch `torchrun --nproc-per-node N -m belamy train ...` instead")
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
    for flag, field in (("hflip", "hflip"), ("strict_data", "strict_data"), ("sync_bn", "sync_bn")):
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
    from belamy.train import distributed

    overrides = _train_overrides(args)
    nproc = getattr(args, "nproc", None)
    if nproc is not None:
        if nproc < 1:
            raise ConfigError(f"--nproc must be >= 1, got {nproc}")
        if distributed.from_environment().enabled:
            raise ConfigError("--nproc launches torchrun itself: do not combine it with torchrun")
        if nproc > 1:
            return distributed.launch(nproc, _without_nproc(args.argv))
    run = belamy.train(getattr(args, "config", None), resume=getattr(args, "resume", None),
                       overwrite=getattr(args, "overwrite", False), progress=not getattr(args, "no_progress", False),
                       **overrides)
    if not distributed.from_environment().is_main:
        return 0
    print(f"run:         {run.path}")
    print(f"samples:     {run.path / 'samples.png'}  (and {run.path / 'samples'}/ over time)")
    print(f"config:      {run.path / 'config.yaml'}")
    print(f"log:         {run.path / 'log.jsonl'}")
    print(f"checkpoints: {run.path / 'checkpoints'}  (continue with: belamy train --resume {run.path})")
    print(f"model:       {run.path / 'model.safetensors'} + config.json  (belamy sample {run.path})")
    return 0


def _without_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


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
    _add_watermark_flag(p)
    p.set_defaults(func=cmd_sample)


def _add_watermark_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watermark", action="store_true", help="also mark the images invisibly (belamy detect reads "
                                                            "it back after re-encoding; see belamy.provenance)")


def cmd_sample(args: argparse.Namespace) -> int:
    import belamy
    from belamy.provenance import provenance_text
    from belamy.utils.images import save_png

    g = belamy.load(args.run, device=args.device)
    samples = g.sample(args.n, seed=args.seed, class_label=args.class_label, batch_size=args.batch_size)
    meta = provenance_text(g.config, args.seed, None if args.class_label is None else f"class {args.class_label}")
    if args.out_dir:
        for i, image in enumerate(g.sample_images(args.n, args.seed, args.class_label, args.batch_size)):
            save_png(image, Path(args.out_dir) / f"{args.seed:06d}-{i:05d}.png", {**meta, "index": str(i)},
                     args.watermark)
        print(f"wrote {args.n} images to {args.out_dir}")
        return 0
    out = Path(args.out or Path(args.run) / "sample.png")
    save_png(g.grid(samples, args.nrow), out, meta, args.watermark and g.data.is_image)
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
    _add_watermark_flag(p)
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args: argparse.Namespace) -> int:
    import belamy
    from belamy.provenance import provenance_text
    from belamy.utils.images import make_grid, save_png

    g = belamy.load(args.run, device=args.device)
    g._require_images()
    walk = g.interpolate(args.steps, seed=args.seed, rows=args.rows, class_label=args.class_label)
    out = Path(args.out or Path(args.run) / "walk.png")
    condition = "latent walks" + ("" if args.class_label is None else f", class {args.class_label}")
    save_png(make_grid(walk, nrow=args.steps), out, provenance_text(g.config, args.seed, condition),
             args.watermark)
    print(f"wrote {out}")
    return 0


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="images from a prompt (text-to-image) or a class (class-conditional)",
                       description="Generate with a text-to-image model (--prompt, --prompts-file: one row per "
                                   "prompt) or a class-conditional one (--class). Unknown words are listed with the "
                                   "nearest known ones; a prompt with no known word is refused unless "
                                   "--allow-unknown.")
    p.add_argument("run", help="run folder (runs/NAME) or model folder")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="what to draw, e.g. 'a small white circle on a green background'")
    what.add_argument("--prompts-file", help="a text file with one prompt per line")
    what.add_argument("--class", dest="class_label", help="class index or name (class-conditional models)")
    p.add_argument("--to", help="with --prompt: walk from --prompt to this prompt (GAN-INT), --n steps")
    p.add_argument("--n", type=int, default=8, help="images per prompt or class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-unknown", action="store_true", help="generate even if no word of a prompt is known")
    p.add_argument("--out", help="grid PNG (default RUN/generated.png)")
    p.add_argument("--out-dir", help="one PNG per image in this folder instead of a grid")
    p.add_argument("--device", default="cpu")
    _add_watermark_flag(p)
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    import warnings

    import torch

    import belamy
    from belamy.pipelines.text_to_image import TextToImagePipeline
    from belamy.provenance import provenance_text
    from belamy.utils.images import make_grid, save_png, to_pil

    model = belamy.load(args.run, device=args.device)
    meta = provenance_text(model.config, args.seed)
    if args.class_label is not None:
        if isinstance(model, TextToImagePipeline) or not getattr(model, "num_classes", 0):
            raise ValueError(f"{args.run} is not a class-conditional model: --class does not apply")
        images, rows = model.sample(args.n, args.seed, args.class_label), [args.class_label]
        meta["condition"] = f"class {args.class_label}"
    else:
        if not isinstance(model, TextToImagePipeline):
            raise ValueError(f"{args.run} is not a text-to-image model ({model.config.get('recipe')}): "
                             f"--prompt does not apply" + (" (use --class)" if getattr(model, "num_classes", 0)
                                                           else ""))
        if args.prompts_file:
            rows = [line.strip() for line in Path(args.prompts_file).read_text().splitlines() if line.strip()]
            if not rows:
                raise ValueError(f"{args.prompts_file} holds no prompts")
        else:
            rows = [args.prompt]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.to:
                images = model.interpolate_prompts(args.prompt, args.to, max(args.n, 2), args.seed,
                                                   args.allow_unknown)
                rows = [f"{args.prompt} -> {args.to}"]
            else:
                images = torch.cat([model.generate(p, args.n, args.seed, args.allow_unknown) for p in rows])
        for note in dict.fromkeys(str(w.message) for w in caught):
            print(f"belamy generate: warning: {note}", file=sys.stderr)
        meta["condition"] = " | ".join(rows)
    if args.out_dir:
        per_row = images.shape[0] // len(rows)
        for i, image in enumerate(to_pil(images)):
            save_png(image, Path(args.out_dir) / f"{i // per_row:03d}-{i % per_row:03d}.png",
                     {**meta, "condition": str(rows[i // per_row]), "index": str(i % per_row)}, args.watermark)
        print(f"wrote {images.shape[0]} images to {args.out_dir}")
        return 0
    out = Path(args.out or Path(args.run) / "generated.png")
    save_png(make_grid(images, nrow=images.shape[0] // len(rows)), out, meta, args.watermark)
    print(f"wrote {out}")
    return 0


def _add_text_encoder(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("text-encoder", help="pretrain a text encoder on captioned images (contrastive)",
                       description="Pretrain belamy's text encoder (a bidirectional GRU) against the images of a "
                                   "captioned data set with a contrastive image-text loss, and save it for "
                                   "`belamy train --model text2img -o text_encoder=FOLDER`.")
    p.add_argument("--data", required=True, help="captioned data: shapes, or a folder with metadata.jsonl, "
                                                 "captions.csv or .txt captions")
    p.add_argument("--out", required=True, help="folder to write text_encoder.json + .safetensors into")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--resolution", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_text_encoder)


def cmd_text_encoder(args: argparse.Namespace) -> int:
    from belamy.data import open_data
    from belamy.text import Tokenizer, pretrain_text_encoder, save_text_encoder

    data = open_data(args.data, args.resolution)
    if getattr(data, "captions", None) is None:
        raise ValueError(f"{args.data} has no captions")
    pretrained = pretrain_text_encoder(data, steps=args.steps, seed=args.seed,
                                       tokenizer=Tokenizer(data.info.vocabulary), progress=True)
    save_text_encoder(Path(args.out), pretrained)
    figures = ", ".join(f"{k} {v:.3f}" for k, v in pretrained.figures.items() if isinstance(v, float))
    print(f"wrote {args.out} ({figures})")
    return 0


IMAGE_COMMANDS = {
    "translate": "image-to-image translation with a pix2pix or CycleGAN model",
    "upscale": "super-resolution with an SRGAN model (large images in overlapping tiles)",
    "inpaint": "fill the holes a mask marks (white = hole) with an inpainting model",
}


def _add_image_commands(sub: argparse._SubParsersAction) -> None:
    for name, summary in IMAGE_COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. --input may be a "
                           f"folder: every image in it is processed and written to the --out folder as NAME.png.")
        p.add_argument("run", help="run folder (runs/NAME) or model folder")
        p.add_argument("--input", required=True, help="an image file, or a folder of images")
        p.add_argument("--out", required=True, help="the output PNG, or a folder when --input is a folder")
        p.add_argument("--device", default="cpu")
        _add_watermark_flag(p)
        if name == "translate":
            p.add_argument("--direction", choices=("AtoB", "BtoA"), help="CycleGAN: which way (default AtoB)")
            p.add_argument("--resize", action="store_true", help="scale inputs to the training resolution first")
        elif name == "upscale":
            p.add_argument("--tile", type=int, default=128, help="tile side in input pixels (bounds memory)")
            p.add_argument("--overlap", type=int, default=16, help="overlap of neighbouring tiles, input pixels")
        else:
            p.add_argument("--mask", required=True, help="mask image (white = hole), or a folder of masks named "
                                                         "like the input images")
        p.set_defaults(func=cmd_image)


def _image_jobs(source: Path, out: Path) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs: one file, or every image of a folder into the output folder."""
    from belamy.data.folder import IMAGE_EXTENSIONS

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and
                       not p.name.startswith("."))
        if not files:
            raise ValueError(f"{source} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        if out.exists() and not out.is_dir():
            raise ValueError(f"--input is a folder, so --out must be a folder; {out} is a file")
        return [(p, out / f"{p.stem}.png") for p in files]
    if not source.is_file():
        raise ValueError(f"--input {source} does not exist")
    return [(source, out)]


def cmd_image(args: argparse.Namespace) -> int:
    """translate / upscale / inpaint: each input image -> a PNG with provenance; a bad file is reported and
    skipped (the exit status says so), never the end of a folder's run."""
    import belamy
    from PIL import Image, UnidentifiedImageError

    from belamy.provenance import provenance_text
    from belamy.utils.images import save_png

    model = belamy.load(args.run, device=args.device)
    jobs = _image_jobs(Path(args.input), Path(args.out))
    mask_source = Path(args.mask) if args.command == "inpaint" else None
    if mask_source is not None and not mask_source.exists():
        raise ValueError(f"--mask {mask_source} does not exist")
    failed = 0
    for source, out in jobs:
        try:
            with Image.open(source) as im:
                im.load()
                if args.command == "translate":
                    result = model.translate(im, direction=args.direction, resize=args.resize)
                elif args.command == "upscale":
                    result = model.upscale(im, tile=args.tile, overlap=args.overlap)
                else:
                    mask_path = mask_source / source.name if mask_source.is_dir() else mask_source
                    if mask_source.is_dir() and not mask_path.is_file():
                        matches = sorted(mask_source.glob(f"{source.stem}.*"))
                        if not matches:
                            raise ValueError(f"no mask named {source.stem}.* in {mask_source}")
                        mask_path = matches[0]
                    with Image.open(mask_path) as mask:
                        result = model.inpaint(im, mask)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            failed += 1
            print(f"belamy {args.command}: {source}: {e}", file=sys.stderr)
            if len(jobs) == 1:
                return 1
            continue
        save_png(result, out, provenance_text(model.config, condition=f"{args.command} {source.name}"),
                 args.watermark)
    done = len(jobs) - failed
    print(f"wrote {out if len(jobs) == 1 else f'{done} images to {args.out}'}"
          + (f" ({failed} failed: see above)" if failed else ""))
    return 1 if failed else 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure a run (FID, KID, IS, precision/recall, density/coverage; PSNR, SSIM, "
                                    "label preservation for image-to-image models)",
                       description="Measure a run's samples against its training data (or any --fake against any "
                                   "--real) and print a table; with a run, write RUN/metrics.json. An "
                                   "image-to-image model is measured on held-out data (--real, default: the "
                                   "training data's test split) by its task's figures: PSNR/SSIM, label "
                                   "preservation, cycle error, PSNR in the hole against mean fill.")
    p.add_argument("run", nargs="?", help="run folder (runs/NAME) or model folder: the fake side")
    p.add_argument("--real", help="real images: a data set name, a folder, or a .npz statistics file "
                                  "(default: the run's training data)")
    p.add_argument("--fake", help="fake images: a folder, a run folder or a .npz file (default: the run)")
    p.add_argument("--metrics", help="comma-separated: fid, kid, is, pr, dc (default fid,kid,pr); for a "
                                     "text-to-image model: colour, shape, position, size, fid (default: all)")
    p.add_argument("--n", type=int, help="fake images (a run: 10000 samples; a folder: all files)")
    p.add_argument("--n-real", type=int, help="real images (default: all)")
    p.add_argument("--cas", action="store_true", help="Classification Accuracy Score of a conditional model: a "
                                                      "classifier trained only on its samples (--n-per-class), "
                                                      "tested on --real (default: the training data's test split)")
    p.add_argument("--n-per-class", type=int, default=500, help="with --cas: samples per class")
    p.add_argument("--extractor", default="auto", help="auto (classifier for labeled data, else inception), "
                                                       "classifier or inception")
    p.add_argument("--weights", help="Inception weights file (default: $BELAMY_HOME/weights/"
                                     "pt_inception-2015-12-05-6726825d.pth)")
    p.add_argument("--resizer", default="clean", choices=("clean", "legacy"),
                   help="clean: antialiased bicubic (clean-fid); legacy: bilinear, no antialiasing (pytorch-fid)")
    p.add_argument("--resolution", type=int, help="side real data sets and folders are read at (default: the "
                                                  "fake images')")
    p.add_argument("--seed", type=int, default=0, help="latents of the run's samples")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or mps: generator and extractor")
    p.add_argument("--out", help="metrics JSON (default RUN/metrics.json; none without a run)")
    p.add_argument("--no-cache", action="store_true", help="measure reference statistics again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from belamy import __version__
    from belamy.metrics import evaluate, format_table
    from belamy.metrics.sources import training_data_of
    from belamy.train.checkpoint import write_json_atomic

    if args.run is None and (args.real is None or args.fake is None):
        raise ValueError("give a run folder (belamy eval runs/NAME), or both --real and --fake")
    if args.cas:
        return _eval_cas(args)
    task = _task_of(args.run) if args.run and args.fake is None else "sample"
    if task == "text":
        import belamy

        return _eval_text_to_image(args, belamy.load(args.run, device=args.device))
    if task != "sample":
        return _eval_image_to_image(args)
    fake = args.fake or args.run
    real = args.real or training_data_of(args.run)
    names = _metric_names(args.metrics or "fid,kid,pr")
    result = evaluate(real, fake, names, args.extractor, args.n, n_real=args.n_real, seed=args.seed,
                      batch_size=args.batch_size, resolution=args.resolution, device=args.device,
                      weights=args.weights, resizer=args.resizer, cache=not args.no_cache,
                      progress=not args.no_progress)
    print(f"belamy eval: fake {fake}, real {real}")
    print(format_table(result))
    out = args.out or (Path(args.run) / "metrics.json" if args.run else None)
    if out:
        write_json_atomic(Path(out), {"belamy": __version__, "fake": str(fake), "real": str(real), **result})
        print(f"wrote {out}")
    return 0


def _eval_cas(args: argparse.Namespace) -> int:
    import belamy
    from belamy import __version__
    from belamy.metrics.cas import classification_accuracy_score
    from belamy.metrics.sources import is_run_folder, training_data_of
    from belamy.train.checkpoint import write_json_atomic

    if args.run is None:
        raise ValueError("--cas measures a model: give its run folder (belamy eval runs/NAME --cas)")
    trained_on = training_data_of(args.run) if is_run_folder(Path(args.run)) else None
    result = classification_accuracy_score(belamy.load(args.run, device=args.device), args.real,
                                           args.n_per_class, args.seed, trained_on=trained_on)
    print(f"belamy eval --cas: {args.run}, {result['n_synthetic']} synthetic images, tested on {result['real']} "
          f"({result['n_real_test']} real images)")
    print(f"  CAS (trained on synthetic)      {result['cas']:.4f}")
    if "real_accuracy" in result:
        print(f"  trained on {result['n_real_train']} real images    {result['real_accuracy']:.4f}")
    print(f"  chance                          {result['chance']:.4f}")
    if result["test_seen_in_training"]:
        print(f"  note: the model was trained on {trained_on}, which holds these real test images: for a clean "
              f"score train on a train split and test on its test split (e.g. mnist:train / mnist:test)")
    out = Path(args.out or Path(args.run) / "metrics.json")
    kept = json.loads(out.read_text()) if out.is_file() else {}  # the run's other figures stay beside the score
    write_json_atomic(out, {**kept, "belamy": __version__, "cas": result})
    print(f"wrote {out}")
    return 0


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a labeled image folder of synthetic data from a conditional model",
                       description="Sample every class of a class-conditional model (or a prompt per class of a "
                                   "text-to-image one) into OUT/CLASS/*.png, with OUT/manifest.csv (file, class, "
                                   "label, seed, index, condition) and provenance in every PNG. belamy train --data "
                                   "OUT reads it as a labeled folder.")
    p.add_argument("run", help="run folder (runs/NAME) or model folder")
    p.add_argument("--n-per-class", type=int, default=500)
    p.add_argument("--out", required=True, help="a new (or empty) folder")
    p.add_argument("--seed", type=int, default=0, help="class k is sampled with seed + k")
    p.add_argument("--prompt", action="append", metavar="CLASS=PROMPT",
                   help="text-to-image models: the prompt of a class (default 'a CLASS'); repeat per class")
    p.add_argument("--device", default="cpu")
    _add_watermark_flag(p)
    p.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    import belamy
    from belamy.pipelines.synthetic import write_synthetic_folder

    prompts = {}
    for item in args.prompt or []:
        name, sep, prompt = item.partition("=")
        if not sep or not name.strip() or not prompt.strip():
            raise ValueError(f"--prompt expects CLASS=PROMPT, got {item!r}")
        prompts[name.strip()] = prompt.strip()
    done = write_synthetic_folder(belamy.load(args.run, device=args.device), args.out, args.n_per_class, args.seed,
                                  prompts or None, args.watermark)
    print(f"wrote {done['images']} images of {len(done['classes'])} classes to {args.out} (manifest: "
          f"{done['manifest']})")
    return 0


def _task_of(run: str) -> str:
    from belamy.recipes import RECIPES
    from belamy.metrics.sources import is_run_folder

    config = Path(run) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("task", "sample")
    if is_run_folder(Path(run)):  # a run still training: its recipe says
        import yaml

        return RECIPES.get((yaml.safe_load((Path(run) / "config.yaml").read_text()) or {}).get("model", "")).task
    return "sample"


def _eval_image_to_image(args: argparse.Namespace) -> int:
    """belamy eval on an image-to-image model: its task's figures on held-out data (the training data's test
    split by default)."""
    import belamy
    from belamy import __version__
    from belamy.data import DATASETS, split_spec
    from belamy.metrics.image_to_image import evaluate_image_to_image
    from belamy.metrics.sources import training_data_of
    from belamy.train.checkpoint import write_json_atomic

    model = belamy.load(args.run, device=args.device)
    data = args.real
    if data is None:
        name, _ = split_spec(training_data_of(args.run))
        data = f"{name}:test"
        if name not in DATASETS:
            raise ValueError(f"give held-out data with --real (e.g. the test split of {name}: a folder with testA/ "
                             f"and testB/, or {name}:test for a paired layout with split folders)")
    result = evaluate_image_to_image(model, data, args.n, seed=args.seed, batch_size=args.batch_size)
    print(f"belamy eval: {model.recipe} ({model.task}) {args.run} on {data}, {result['n']} images")
    for key, value in result.items():
        if isinstance(value, float):
            print(f"  {key:26s} {value:.4f}")
    out = args.out or Path(args.run) / "metrics.json"
    write_json_atomic(Path(out), {"belamy": __version__, **result})
    print(f"wrote {out}")
    return 0


def _metric_names(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def _eval_text_to_image(args: argparse.Namespace, model) -> int:
    """belamy eval on a text-to-image model: attribute consistency on held-out `shapes` scenes."""
    from belamy import __version__
    from belamy.metrics.text_to_image import MEASURES, shapes_consistency
    from belamy.train.checkpoint import write_json_atomic

    data = args.real or "shapes:test"
    if not data.startswith("shapes"):
        raise ValueError(f"text-to-image models are measured on shapes:test or shapes-heldout (caption attributes "
                         f"read back from the images); {data} has no attributes")
    attributes = tuple(_metric_names(args.metrics)) if args.metrics else MEASURES
    result = shapes_consistency(model, data, n=args.n or 500, seed=args.seed, attributes=attributes,
                                batch_size=args.batch_size)
    print(f"belamy eval: text2img {args.run} on {data}, {result['n']} single-object scenes")
    for key, value in result.items():
        if isinstance(value, float):
            print(f"  {key:26s} {value:.4f}")
    out = args.out or Path(args.run) / "metrics.json"
    write_json_atomic(Path(out), {"belamy": __version__, **result})
    print(f"wrote {out}")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write an HTML report of a run (status, alerts, plots, samples, metrics)",
                       description="Write one self-contained HTML page (plots and samples embedded) that shows "
                                   "whether a run is healthy; works on a run still training.")
    p.add_argument("run", help="run folder (runs/NAME)")
    p.add_argument("--out", help="HTML file (default RUN/report.html)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from belamy.report import write_report

    print(f"wrote {write_report(args.run, args.out)}")
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
        print(f"{name:14s} {DATASETS.summary(name)}")
    print(f"{'PATH':14s} any folder of png/jpg/jpeg/webp/bmp images (class = first-level subfolder); "
          f"image-to-image recipes read paired/unpaired layouts (trainA/trainB, A/ + B/, or A|B side by side)")
    print(f"{'NAME:SPLIT':14s} a split of a set that has them (e.g. edges2mnist:test)")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model: ONNX (checked against PyTorch in onnxruntime) or a portable "
                                      "model folder with a model card",
                       description="--format onnx: the generator with a dynamic batch and its condition inputs "
                                   "(see belamy.export), plus a JSON beside it with the model's config; the parity "
                                   "with PyTorch is measured in onnxruntime when it is installed. --format folder: "
                                   "config.json, model.safetensors, samples.png and README.md (a model card), the "
                                   "layout of a Hugging Face hub model; belamy.load reads it, belamy push uploads "
                                   "it.")
    p.add_argument("run", help="run folder (runs/NAME) or model folder")
    p.add_argument("--format", choices=("onnx", "folder"), default="onnx")
    p.add_argument("--out", required=True, help="the .onnx file, or the folder")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), help="CycleGAN: which direction to export")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("push", help="upload a model folder to the Hugging Face hub (needs huggingface_hub and a "
                                    "login)")
    p.add_argument("folder", help="a folder written by belamy export --format folder")
    p.add_argument("--repo", required=True, help="hub repository, USER/NAME")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=cmd_push)


def cmd_export(args: argparse.Namespace) -> int:
    import warnings

    import belamy
    from belamy.export import export_folder, export_onnx

    if args.format == "folder":
        print(f"wrote {export_folder(args.run, args.out)} (config.json, model.safetensors, README.md)")
        return 0
    with warnings.catch_warnings():  # the exporter's notes on traced shapes are not the user's concern
        warnings.simplefilter("ignore")
        report = export_onnx(belamy.load(args.run), args.out, direction=args.direction)
    inputs = ", ".join(f"{k} {v}" for k, v in report["inputs"].items())
    print(f"wrote {args.out}: inputs {inputs} (batch axis dynamic) -> {report['outputs'][0]}")
    if report["max_abs_error"] is None:
        print("onnxruntime is not installed: parity with PyTorch not measured (pip install onnxruntime)")
    else:
        print(f"onnxruntime vs PyTorch: max abs error {report['max_abs_error']:.2e}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from belamy.export import push_folder

    print(f"pushed {args.folder} to {push_folder(args.folder, args.repo, args.private)}")
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve models over HTTP: a web page at /, the API at /generate, /translate, "
                                     "/models, /health, its documentation at /docs",
                       description="Load the given run or model folders once and serve them (FastAPI + uvicorn; "
                                   "pip install 'belamy[serve]'). A model is named by its folder name. Binds to "
                                   "127.0.0.1 unless --host says otherwise; images carry provenance metadata and "
                                   "the invisible watermark (--no-watermark to leave it out).")
    p.add_argument("runs", nargs="+", help="run or model folders")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-watermark", action="store_true", help="PNG metadata only")
    p.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util

    from belamy.serve import serve

    if not all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn", "multipart")):
        raise ValueError("belamy serve needs FastAPI, uvicorn and python-multipart: pip install 'belamy[serve]'")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be 1..65535, got {args.port}")
    serve(args.runs, args.host, args.port, args.device, not args.no_watermark, not args.no_batching)
    return 0


def _add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="read the provenance of images: belamy's PNG metadata and invisible watermark",
                       description="For each image: the PNG text metadata belamy wrote (lost on re-encoding) and the "
                                   "watermark's detection statistic z (about N(0, 1) for an unmarked image; marked "
                                   "when z > 4, a false-positive rate near 3e-5). Exit status 0 when every image was "
                                   "read.")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, WebP, ...)")
    p.add_argument("--key", type=int, help="the watermark key, if the images were marked with a private one")
    p.add_argument("--json", action="store_true", help="one JSON object per image instead of text")
    p.set_defaults(func=cmd_detect)


def cmd_detect(args: argparse.Namespace) -> int:
    from PIL import Image, UnidentifiedImageError

    from belamy.provenance import DEFAULT_KEY, THRESHOLD, detect_watermark, read_provenance

    failed = 0
    for path in args.images:
        try:
            with Image.open(path) as image:
                image.load()
                reading = detect_watermark(image, args.key if args.key is not None else DEFAULT_KEY)
            metadata = read_provenance(path)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            failed += 1
            print(f"belamy detect: {path}: {e}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": str(path), "watermark": reading.marked, "z": round(reading.z, 3),
                              "metadata": metadata}))
            continue
        verdict = "marked" if reading.marked else "no watermark"
        print(f"{path}: watermark: {verdict} (z = {reading.z:.2f}, threshold {THRESHOLD})")
        made_by_belamy = metadata.get("generator") == "belamy"
        print(f"  metadata: {'belamy' if made_by_belamy else 'none from belamy'}")
        for key in ("model", "run_id", "recipe", "seed", "condition", "config_hash", "watermark", "Software"):
            if made_by_belamy and key in metadata:
                print(f"    {key:12s} {metadata[key]}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from belamy import __version__

    parser = argparse.ArgumentParser(prog="belamy", description="Train, evaluate and use GANs.")
    parser.add_argument("--version", action="version", version=f"belamy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_interpolate(sub)
    _add_image_commands(sub)
    _add_generate(sub)
    _add_text_encoder(sub)
    _add_eval(sub)
    _add_report(sub)
    _add_detect(sub)
    _add_export(sub)
    _add_synth(sub)
    _add_serve(sub)
    p = sub.add_parser("models", help="list the GAN recipes")
    p.add_argument("--verbose", "-v", action="store_true", help="show defaults and options")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("datasets", help="list the built-in data sets")
    p.set_defaults(func=cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
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
