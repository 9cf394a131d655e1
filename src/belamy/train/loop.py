"""The training engine, shared by every recipe: it owns devices, optimizers, EMA, logs, samples and checkpoints,
and runs the recipe's phases (n D steps, then one G step) in a loop that reads top to bottom.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from belamy import __version__
from belamy.config import ConfigError, TrainConfig
from belamy.data import open_data
from belamy.data.base import DataInfo, PointDistribution
from belamy.losses import LOSSES
from belamy.pipelines.generator import MODEL_CONFIG, MODEL_WEIGHTS, GeneratorPipeline
from belamy.recipes import RECIPES, Batch, Recipe
from belamy.train import checkpoint as ckpt
from belamy.train import distributed
from belamy.train.ema import EMA, recalibrate_batchnorm
from belamy.train.health import HealthMonitor, HealthRules, gradient_norm, sample_diversity
from belamy.train.logging import RunLogger
from belamy.train.stream import RealStream
from belamy.provenance import provenance_text
from belamy.utils.images import make_grid, save_png, scatter_points

FUSED_ADAM_ON_CPU = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)  # torch.optim.Adam(fused=True)

# Fields a resumed run may change: how long and how often, never what or how it learns.
RESUMABLE_OVERRIDES = {"steps", "epochs", "log_every", "sample_every", "ckpt_every", "keep_ckpts", "workers",
                       "device", "dist_timeout", "eval_every", "eval_metrics", "eval_n", "eval_extractor",
                       "eval_weights"}


class TrainingDiverged(RuntimeError):
    """A loss or weight became NaN/inf; the message names the steps and the last good checkpoint."""


@dataclass
class Run:
    """A run folder: config.yaml, log.jsonl, samples/, checkpoints/, and at the end model.safetensors."""

    path: Path
    config: TrainConfig
    step: int

    def load(self, device: str = "cpu") -> GeneratorPipeline:
        from belamy import load

        return load(self.path, device=device)


# --- set-up helpers --------------------------------------------------------------------------------------------


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill the fields left to the recipe (loss, learning rates, betas, D steps, options) with its defaults."""
    recipe = RECIPES.get(config.model)
    d = recipe.defaults
    options = recipe.parse_options(config.options)
    resolved = dataclasses.replace(
        config,
        loss=config.loss or d.loss,
        lr_g=config.lr_g or d.lr_g,
        lr_d=config.lr_d or d.lr_d,
        betas=config.betas or d.betas,
        d_steps=config.d_steps or d.d_steps,
        batch_size=config.batch_size or d.batch_size,
        lr_decay=config.lr_decay or d.lr_decay,
        options=dataclasses.asdict(options),
    )
    LOSSES.get(resolved.loss)  # an unknown loss fails now, with the valid names
    return resolved


def select_device(name: str, local_rank: int = 0, distributed_run: bool = False) -> torch.device:
    """The training device; under torchrun, "auto" and "cuda" mean this rank's GPU (cuda:LOCAL_RANK)."""
    if distributed_run and (name.startswith("cuda:") or name == "mps"):
        raise ConfigError(f"device {name!r} under torchrun: each process takes its own GPU (cuda:LOCAL_RANK) with "
                          f"--device cuda or auto; MPS has no distributed backend (use --device cpu)")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"this process is local rank {local_rank} but the machine has "
                              f"{torch.cuda.device_count()} GPU(s): start at most one process per GPU (--nproc "
                              f"{torch.cuda.device_count()}), or train on CPU with --device cpu")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "auto":
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available (use --device cpu or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for but MPS is not available (use --device cpu or auto)")
    return device


def adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has it for the device (CUDA; the CPU from torch 2.4): one pass
    over all tensors instead of small ops per tensor: for text2img's G and D (109 tensors, 1.8M weights) a step of
    both optimizers took 6-7 ms instead of 18-20 on this CPU. The update is Adam's; only the rounding differs."""
    fused = device.type == "cuda" or (device.type == "cpu" and FUSED_ADAM_ON_CPU)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


def autocast_dtype(precision: str, device: torch.device, data: DataInfo) -> torch.dtype | None:
    """The autocast dtype of the forward passes, or None for plain fp32.

    "auto" is bf16 for convolutional nets where the hardware computes in bf16 natively (CUDA with bf16, CPUs with
    AVX512-BF16 or AMX), fp32 elsewhere: on an AVX2-only CPU bf16 convolutions are emulated and ~20x slower
    (benchmarks/train_throughput.py). 2-D point models are too small to gain, so fp32."""
    if precision == "fp32" or (precision == "auto" and not data.is_image):
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError(f"precision 'fp16' needs a CUDA device (this run is on {device.type}): use bf16 or "
                              f"fp32")
        return torch.float16
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("precision 'bf16' was asked for but this GPU does not support bfloat16")
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return None


def make_run_dir(config: TrainConfig, overwrite: bool) -> Path:
    out = Path(config.out)
    base = config.name or f"{config.model}-{Path(config.data).name or 'data'}"
    path = out / base
    if path.exists() and any(path.iterdir()):
        if overwrite:
            shutil.rmtree(path)
        elif config.name:
            raise ConfigError(f"run folder {path} already exists: continue it with --resume {path}, replace it "
                              f"with --overwrite, or choose another --name")
        else:
            i = 2
            while (out / f"{base}-{i}").exists():
                i += 1
            path = out / f"{base}-{i}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_eval_config(config: TrainConfig) -> None:
    from belamy.metrics.api import METRICS
    from belamy.metrics.extractors import EXTRACTORS

    for name in config.eval_metrics.split(","):
        METRICS.get(name.strip())
    if config.eval_extractor != "auto":
        EXTRACTORS.get(config.eval_extractor)


def _cycle_labels(n: int, num_classes: int) -> torch.Tensor:
    return torch.arange(n) % num_classes


# --- the engine -------------------------------------------------------------------------------------------------


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, overwrite: bool = False,
          progress: bool = True, **overrides: Any) -> Run:
    """Train a GAN; returns the Run. `overrides` are TrainConfig fields (model="dcgan", data="mnist", steps=...)."""
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"{run_dir} is not a run folder (no config.yaml): nothing to resume")
        saved = TrainConfig.load(run_dir / "config.yaml")
        saved = saved.replace(options={**RECIPES.get(saved.model).introduced, **saved.options})
        changed = {k for k, v in overrides.items() if getattr(saved, k) != v}
        if changed - RESUMABLE_OVERRIDES:
            raise ConfigError(f"a resumed run keeps its config; these fields cannot change: "
                              f"{', '.join(sorted(changed - RESUMABLE_OVERRIDES))} (only "
                              f"{', '.join(sorted(RESUMABLE_OVERRIDES))} can)")
        config = saved.replace(**{k: overrides[k] for k in changed})
    else:
        config = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
        config = resolve_config(config)
        run_dir = None
    return _Trainer(config, run_dir, overwrite, progress).run()


class _Trainer:
    """State of one training run; `run()` is the loop. Split into methods only where a piece is reused."""

    def __init__(self, config: TrainConfig, resume_dir: Path | None, overwrite: bool, progress: bool) -> None:
        self.config = config
        self.dist = distributed.from_environment()
        self.device = select_device(config.device, self.dist.local_rank, self.dist.enabled)
        if config.batch_size % self.dist.world_size:
            raise ConfigError(f"batch size {config.batch_size} (the global batch) is not divisible by the "
                              f"{self.dist.world_size} processes")
        self.owns_process_group = self.dist.enabled and not torch.distributed.is_initialized()
        distributed.init_process_group(self.dist, self.device, config.dist_timeout)
        self.rows = self.dist.shard(config.batch_size)  # this rank's rows of every global batch
        if config.eval_every:
            _check_eval_config(config)  # a typo fails now, not after eval_every steps
            if RECIPES.get(config.model).task != "sample":
                raise ConfigError(f"--eval-every measures generators of noise; {config.model} is an image-to-image "
                                  f"recipe: measure it with `belamy eval RUN --data DATA:test` after training")

        # (1) Data, then the recipe's networks, initialized from the seed.
        recipe_cls = RECIPES.get(config.model)
        self.source = open_data(config.data, config.resolution, config.channels, config.cache, config.strict_data,
                                config.workers, pairs=bool(recipe_cls.pairing))
        self.info: DataInfo = self.source.info
        torch.manual_seed(config.seed)
        options = recipe_cls.parse_options(config.options)
        self.recipe: Recipe = recipe_cls(options, self.info, LOSSES.get(config.loss))
        if recipe_cls.uses_text and config.hflip:
            raise ConfigError("--hflip would mirror the images but not their captions ('left' would become "
                              "'right'): train text-conditioned recipes without it")
        self.recipe.prepare(self.source)  # e.g. a text encoder pretrained on the captions (cached)
        self.recipe.to(self.device)
        self.channels_last = config.channels_last and self.info.is_image
        if self.channels_last:
            self.recipe.to(memory_format=torch.channels_last)
        # The EMA generator is copied before batch norm goes global: only rank 0 runs it (samples, exports), alone,
        # so its batch norm must not wait for the other ranks.
        self.ema = EMA(self.recipe.G, config.ema_decay) if config.ema_decay > 0 else None
        if config.sync_bn and self.dist.enabled:
            distributed.sync_batchnorm(self.recipe, self.device)
        self.num_classes = self.recipe.num_classes
        self.amp_dtype = autocast_dtype(config.precision, self.device, self.info)

        # (2) Optimizers (Adam, as every recipe here prescribes), fp16 loss scalers, and the DDP wrappers that
        # synchronize gradients across ranks.
        self.G, self.D = G, D = self.recipe.G, self.recipe.D
        # Parameters a recipe froze (a pretrained text encoder) stay frozen: phases switch the others on and off.
        # (DDP must not wait for gradients they never get.)
        self.frozen = {id(p) for p in self.recipe.parameters() if not p.requires_grad}
        self.opt_g = adam(G.parameters(), config.lr_g, config.betas, self.device)
        self.opt_d = adam(D.parameters(), config.lr_d, config.betas, self.device)
        self.scalers = ({"G": torch.amp.GradScaler("cuda"), "D": torch.amp.GradScaler("cuda")}
                        if self.amp_dtype == torch.float16 else {})
        self.ddp = {name: distributed.wrap(net, self.dist, self.device) for name, net in (("G", G), ("D", D))} \
            if self.dist.enabled else {}

        # (3) Randomness: one generator for every draw of the loop (latents, labels, flips, penalties); saved in
        # checkpoints, so a resumed run continues the same stream. Fixed latents show one set of samples evolve.
        self.rng = torch.Generator().manual_seed(config.seed)
        fixed = torch.Generator().manual_seed(config.seed + 1)
        n_fixed = config.n_samples if self.info.is_image else 2000
        self.fixed_z = torch.randn(n_fixed, self.latent_dim, generator=fixed)
        self.fixed_y = _cycle_labels(n_fixed, self.num_classes) if self.num_classes else None
        self.fixed_real, self.fixed_inputs = self._fixed_images(fixed)
        captions = self.recipe.caption_tokens(self.source.captions) if recipe_cls.uses_text else None
        self.fixed_text = self._fixed_text(captions, fixed, n_fixed)
        self.stream = RealStream(self.source, config.batch_size, config.seed, self.device, config.hflip,
                                 config.workers, self.channels_last, self.rows,
                                 lambda flag: distributed.all_ranks_agree(self.dist, flag, self.device), captions)
        n_data = None if isinstance(self.source, PointDistribution) else len(self.source)
        if config.epochs is not None:
            if n_data is None:
                raise ConfigError(f"{self.info.name} is an infinite distribution: use --steps, not --epochs")
            self.config = config = dataclasses.replace(
                config, steps=max(1, round(config.epochs * (n_data // config.batch_size))), epochs=None)
        self.step = 0
        self.lr_scale, self.recoveries = 1.0, 0  # recovery (roll back, lower the rates) changes these
        self.best_fid = float("inf")  # of the --eval-every evaluations so far
        self.bad_seen = len(self.stream.bad_files)  # unreadable files already reported
        rules = HealthRules()
        self.health = HealthMonitor(rules, self.recipe.loss.probability_output,
                                    warmup_steps=int(rules.warmup_fraction * config.steps))

        # (4) The run folder: new (made by rank 0), or the one we resume (its newest complete checkpoint).
        main = self.dist.is_main
        if resume_dir is None:
            self.run_dir = distributed.broadcast_object(self.dist, make_run_dir(config, overwrite) if main else None)
        else:
            self.run_dir = resume_dir
            self._restore(self._newest_checkpoint())
        best = self.run_dir / "best" / MODEL_CONFIG  # an evaluation after the newest checkpoint may be better
        if resume_dir is not None and best.is_file():
            self.best_fid = min(self.best_fid, float(json.loads(best.read_text()).get("fid", float("inf"))))
        if main:
            config.save(self.run_dir / "config.yaml")
            if self.fixed_text is not None:  # what each row of the sample grids shows
                (self.run_dir / "samples").mkdir(exist_ok=True)
                (self.run_dir / "samples" / "captions.txt").write_text("\n".join(self.fixed_captions) + "\n")
        self.ckpt_root = self.run_dir / "checkpoints"
        self.logger = RunLogger(self.run_dir, config.steps, self.step, progress, active=main)
        self.logger.log({"step": self.step, "event": "start", "belamy": __version__, "device": str(self.device),
                         "precision": str(self.amp_dtype or "fp32"), "data": self.info.name,
                         "data_size": n_data, "batch_size": config.batch_size, "resumed": resume_dir is not None,
                         "processes": self.dist.world_size, "batch_per_process": self.rows.stop - self.rows.start,
                         "sync_bn": config.sync_bn and self.dist.enabled,
                         "G_params": sum(p.numel() for p in G.parameters()),
                         "D_params": sum(p.numel() for p in D.parameters())})
        if getattr(self.source, "skipped", None):
            self.logger.message(f"{len(self.source.skipped)} unreadable file(s) skipped: "
                                f"{'; '.join(self.source.skipped[:5])}", self.step, "warning")

    @property
    def latent_dim(self) -> int:
        return self.G.latent_dim

    def _fixed_text(self, captions: tuple[torch.Tensor, torch.Tensor] | None, fixed: torch.Generator,
                    n: int) -> torch.Tensor | None:
        """Text recipes show rows of samples for fixed captions: one caption per row of 8 (token ids [n, L])."""
        if captions is None:
            return None
        rows = torch.randperm(captions[0].shape[0], generator=fixed)[:max(1, n // 8)]
        self.fixed_captions = [self.source.captions[int(i)][0] for i in rows]
        return captions[0][rows, 0].repeat_interleave(8, dim=0)[:n]

    def _fixed_images(self, fixed: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Image-to-image recipes show what G makes of fixed real images (and inputs): 16 of the data's."""
        if self.recipe.task == "sample":
            return None, None
        n = min(16, len(self.source))
        rows = torch.randperm(len(self.source), generator=fixed)[:n]
        if hasattr(self.source, "images"):
            real = self.source.images[rows].float() / 127.5 - 1
        else:  # a folder decoded on the fly (too large to cache): its first readable files among those rows
            decoded = [self.source[int(i)][0] for i in torch.randperm(len(self.source), generator=fixed)[:4 * n]]
            real = torch.stack([x for x in decoded if x is not None][:n]).float() / 127.5 - 1
        inputs = getattr(self.source, "inputs", None)  # paired and unpaired sets are always decoded into memory
        if inputs is not None:
            inputs = inputs[rows if len(inputs) == len(self.source) else torch.arange(n) % len(inputs)]
            inputs = inputs.float() / 127.5 - 1
        return real, inputs

    # --- the loop ----------------------------------------------------------------------------------------------

    def run(self) -> Run:
        config = self.config
        self._new_interval()
        try:
            while self.step < config.steps:
                try:
                    self._train_step()
                    self._at_intervals()
                except TrainingDiverged as e:
                    if not self._recover(str(e)):
                        raise
        except KeyboardInterrupt:
            # Keep what was learned: a checkpoint of the current step, if it is sound, then stop.
            if self.dist.is_main and self._finite(agree=False):
                path = self.save_checkpoint()
                self.logger.message(f"interrupted; saved {path}; continue with --resume {self.run_dir}",
                                    self.step, "stop")
            self.logger.close()
            raise
        except TrainingDiverged as e:
            self.logger.message(str(e), self.step, "error")
            self.logger.close()
            raise
        # The end: a last checkpoint, the EMA generator as a portable model, and the final sample grid.
        self._check_finite()
        if self.dist.is_main:
            self.save_checkpoint()
            self._export_model()
            self._write_samples(self.run_dir / "samples.png")
        self.logger.log({"step": self.step, "event": "end", "run": str(self.run_dir)})
        self.logger.close()
        distributed.barrier(self.dist)  # every rank returns once the run folder is complete
        if self.owns_process_group:
            distributed.shutdown()
        return Run(self.run_dir, self.config, self.step)

    def _train_step(self) -> None:
        """One step: d_steps updates of D, then one of G; figures are summed on the device (no host sync)."""
        config, recipe, sums = self.config, self.recipe, self.sums
        self._set_learning_rates()
        # (1) Update D: minimize its loss over d_steps fresh real batches (n_critic in WGAN).
        for i in range(config.d_steps):
            batch = self._batch()
            batch.keep_fake = i == config.d_steps - 1  # the G step below reuses this G forward
            _accumulate(sums, self._phase(self.D, self.opt_d, recipe.d_step, batch), "loss_d")
        # (2) Update G once, against the D just updated, with the last D step's latents and fakes.
        _accumulate(sums, self._phase(self.G, self.opt_g, recipe.g_step, batch), "loss_g")
        if self.ema is not None:
            self.ema.update(self.G, self.step)
        self.step += 1
        self.interval_steps += 1
        if self._log_due() and batch.fake is not None:  # the health figure of the interval, from its last batch
            diversity = sample_diversity(batch.fake, batch.real)
            if diversity is not None:
                self.interval_figures["diversity"] = diversity
        self.logger.advance()

    def _log_due(self) -> bool:
        return self.step % self.config.log_every == 0 or self.step == self.config.steps

    def _at_intervals(self) -> None:
        """Logs, samples and checkpoints at their intervals; only here does the host wait on the device."""
        config = self.config
        if len(self.stream.bad_files) > self.bad_seen:
            new = self.stream.bad_files[self.bad_seen:]
            self.bad_seen = len(self.stream.bad_files)
            self.logger.message(f"skipped {len(new)} unreadable file(s) ({self.bad_seen} so far): "
                                f"{'; '.join(new[:3])}", self.step, "warning")
        last = self.step == config.steps
        if self._log_due():
            self._log()
            self._new_interval()
        if config.sample_every and self.step % config.sample_every == 0 and not last:
            self._check_finite()
            if self.dist.is_main:
                self._write_samples(self.run_dir / "samples" / f"step-{self.step:07d}.png")
        if config.eval_every and (self.step % config.eval_every == 0 or last):
            self._check_finite()
            if self.dist.is_main:
                self._evaluate()
            distributed.barrier(self.dist)
        if config.ckpt_every and self.step % config.ckpt_every == 0 and not last:
            self._check_finite()
            if self.dist.is_main:
                self.save_checkpoint()

    def _rollback_target(self) -> Path | None:
        """The checkpoint a recovery would return to, or None (recovery off or used up, or nothing saved yet).
        Rank 0 decides and tells the others: ranks never branch on what each sees of the file system."""
        config = self.config
        if config.recover == "none" or self.recoveries >= config.max_recoveries:
            return None
        good = ckpt.list_checkpoints(self.ckpt_root) if self.dist.is_main else None
        return distributed.broadcast_object(self.dist, good[-1] if good else None)

    def _new_interval(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}  # per-interval sums of the logged figures, kept on the device
        self.interval_figures: dict[str, torch.Tensor] = {}  # figures measured once per interval
        self.interval_start, self.interval_steps, self.t0 = self.step, 0, time.perf_counter()

    def _recover(self, reason: str) -> bool:
        """Roll back to the newest checkpoint with the learning rates lowered, if the config allows (True), else
        False. Rolled-back steps are replayed from the checkpoint's generator state, so only the rates differ."""
        config = self.config
        target = self._rollback_target()
        if target is None:
            if config.recover != "none":
                why = (f"all {config.max_recoveries} used" if self.recoveries >= config.max_recoveries
                       else "no checkpoint saved yet")
                self.logger.message(f"no recovery possible ({why})", self.step, "recovery")
            return False
        failed_at, lr_scale, recoveries = self.step, self.lr_scale * config.recover_lr_factor, self.recoveries + 1
        best_fid = self.best_fid  # RUN/best/ holds it, whatever the checkpoint remembers
        self._restore(target)
        self.lr_scale, self.recoveries, self.best_fid = lr_scale, recoveries, min(best_fid, self.best_fid)
        self.logger.rewind(self.step)
        self.logger.message(f"{reason.split(':')[0]} at step {failed_at}: rolled back to {target.name}, learning "
                            f"rates x{config.recover_lr_factor} (now x{lr_scale:g} of the configured ones); "
                            f"recovery {recoveries} of {config.max_recoveries}", self.step, "recovery")
        self._new_interval()
        return True

    # --- pieces of the loop ------------------------------------------------------------------------------------

    def _latents(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=self.rng).to(self.device)

    def _batch(self) -> Batch:
        """This rank's rows of a global batch; every draw is made for the global batch (see train/distributed.py)."""
        real, labels, inputs, text, index, caption = self.stream.next(self.rng)
        n, rows, k = self.config.batch_size, self.rows, real.shape[0]  # k < B/N when unreadable files were skipped
        z = self._latents(n)[rows][:k]
        fake_labels = None
        if self.num_classes:
            fake_labels = torch.randint(self.num_classes, (n,), generator=self.rng)[rows][:k].to(self.device)
        return Batch(real, labels if self.num_classes else None, z, fake_labels, self.rng, global_size=n, rows=rows,
                     inputs=inputs, text=text, index=index, caption=caption, progress=self.step / self.config.steps)

    def _phase(self, net: nn.Module, optimizer: torch.optim.Optimizer, step_fn, batch: Batch) -> dict:
        """One optimizer step of `net` on the loss the recipe's phase returns. Only `net` collects gradients."""
        G, D = self.G, self.D
        self._trainable(net, True)
        if net is G:
            self._trainable(D, False)  # gradients flow *through* D to G, but D's weight gradients are not needed
        else:
            self._trainable(G, batch.keep_fake)  # G's graph is kept only for the forward the G step reuses
        autocast = torch.autocast(self.device.type, self.amp_dtype) if self.amp_dtype else nullcontext()
        with autocast, self._routed(net, batch.keep_fake):
            losses = step_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        name = "G" if net is G else "D"
        scaler = self.scalers.get(name)
        if scaler is None:
            losses["loss"].backward()
        else:  # fp16: scale the loss so that small gradients survive, skip steps whose gradients overflowed
            scaler.scale(losses["loss"]).backward()
            scaler.unscale_(optimizer)  # so that the logged gradient norm is the true one
        norm = gradient_norm(net.parameters())
        if scaler is None:
            optimizer.step()
        else:
            # An overflow is GradScaler's business (it skips the step and lowers the scale), not a divergence: the
            # skipped step is counted, and its infinite norm is not logged.
            overflow = ~torch.isfinite(norm)
            losses[f"fp16_skipped_{name.lower()}"] = overflow.float()
            norm = torch.where(overflow, torch.zeros_like(norm), norm)
            scaler.step(optimizer)
            scaler.update()
        losses[f"grad_norm_{name.lower()}"] = norm
        return losses

    def _trainable(self, net: nn.Module, on: bool) -> None:
        for p in net.parameters():
            p.requires_grad_(on and id(p) not in self.frozen)

    @contextmanager
    def _routed(self, net: nn.Module, keep_fake: bool):
        """Under DDP, the recipe's phase calls the DDP wrapper of each network whose weight gradients this phase's
        backward computes (D in a D step; G in a G step, and in the D step whose G forward the G step reuses) and
        the bare module otherwise. So a phase synchronizes exactly what it updates: no find_unused_parameters."""
        if not self.ddp:
            yield
            return
        recipe = self.recipe
        recipe.G = self.ddp["G"] if net is self.G or keep_fake else self.G
        recipe.D = self.ddp["D"] if net is self.D else self.D
        try:
            yield
        finally:
            recipe.G, recipe.D = self.G, self.D

    def _set_learning_rates(self) -> None:
        """The configured rates x the recovery scale x the linear decay (to zero at the last step, if asked)."""
        factor = self.lr_scale
        if self.config.lr_decay == "linear":
            factor *= 1.0 - self.step / self.config.steps
        elif self.config.lr_decay == "hold-linear":  # Zhu et al. 2017: constant for half the run, then to zero
            factor *= min(1.0, 2.0 * (1.0 - self.step / self.config.steps))
        for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    def _log(self) -> None:
        sums, steps = self.sums, self.interval_steps
        if not sums:
            return
        keys = list(sums) + list(self.interval_figures)
        counts = {k: (self.config.d_steps if k in _d_keys(sums) else 1) * steps for k in sums}
        tensors = [sums[k].float() for k in sums] + [v.float() for v in self.interval_figures.values()]
        # The one host sync of the interval (and under DDP the one collective): means over the ranks.
        values = distributed.all_reduce_mean(self.dist, torch.stack(tensors)).tolist()
        record: dict[str, Any] = {"step": self.step}
        for k, v in zip(keys, values):
            record[k] = v / counts.get(k, 1)
        record["img_per_s"] = steps * self.config.batch_size / max(time.perf_counter() - self.t0, 1e-9)
        record["lr_g"] = self.opt_g.param_groups[0]["lr"]
        record["lr_d"] = self.opt_d.param_groups[0]["lr"]
        if self.stream.bad_files:
            record["bad_files"] = len(self.stream.bad_files)
        self.logger.log(record)
        if not all(map(_is_finite_number, values)):
            self._diverged([k for k, v in zip(keys, values) if not _is_finite_number(v)])
        for alert in self.health.check(record):
            self.logger.alert(alert.kind, alert.message, alert.figures, self.step)
            if self.config.recover == "alerts" and self._rollback_target() is not None:
                raise TrainingDiverged(f"{alert.kind.replace('_', ' ')}: {alert.message}")

    def _check_finite(self) -> None:
        if not self._finite():
            self._diverged([k for k, v in self.sums.items() if not torch.isfinite(v).all()] or ["weights"])

    def _finite(self, agree: bool = True) -> bool:
        """Weights and this interval's sums are finite (on every rank, when `agree`: one collective)."""
        tensors = [p for p in self.recipe.parameters()] + list(self.sums.values())
        finite = bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
        return distributed.all_ranks_agree(self.dist, finite, self.device) if agree else finite

    def _diverged(self, what: list[str]) -> None:
        good = ckpt.list_checkpoints(self.run_dir / "checkpoints")
        where = f"the last good checkpoint is {good[-1]} (--resume {self.run_dir} continues from it)" if good \
            else "no checkpoint was saved before it"
        raise TrainingDiverged(f"non-finite values ({', '.join(what)}) between steps {self.interval_start} and "
                               f"{self.step}: training stopped; {where}. Try lower --lr-g/--lr-d or another --loss.")

    # --- samples, checkpoints, the exported model ----------------------------------------------------------------

    def _sampling_generator(self) -> nn.Module:
        """The EMA generator with BatchNorm statistics re-estimated for its averaged weights (or G itself)."""
        if self.ema is None:
            return self.G
        net = self.ema.shadow
        calib = torch.Generator().manual_seed(self.config.seed + 2)  # fixed: sampling never moves the train RNG
        n = 256

        def make_input(_: int):
            z = torch.randn(n, self.latent_dim, generator=calib).to(self.device)
            y = torch.randint(self.num_classes, (n,), generator=calib).to(self.device) if self.num_classes else None
            return z, y

        recalibrate_batchnorm(net, make_input)
        return net

    @torch.no_grad()
    def _write_samples(self, path: Path) -> None:
        net = self._sampling_generator()
        was_training = net.training
        net.eval()
        device = self.device

        def to_device(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(device)

        # The same fixed batch (latents, images, and any random draw such as inpainting masks) every time.
        fixed = Batch(to_device(self.fixed_real) if self.fixed_real is not None else self.fixed_z, None,
                      self.fixed_z.to(device), to_device(self.fixed_y),
                      torch.Generator(device).manual_seed(self.config.seed + 1), inputs=to_device(self.fixed_inputs),
                      text=to_device(self.fixed_text))
        out, nrow = self.recipe.preview(net, fixed)
        net.train(was_training)
        if self.info.is_image:
            image = make_grid(out.cpu(), nrow=nrow)
        else:
            image = scatter_points(out, getattr(self.source, "modes", None))
        save_png(image, path, provenance_text({"name": self.run_dir.name, "recipe": self.config.model,
                                               "step": self.step, "options": self.config.options},
                                              seed=self.config.seed, condition="fixed preview batch"))

    def _modules(self) -> dict[str, nn.Module]:
        modules = {"G": self.G, "D": self.D}
        if self.ema is not None:
            modules["G_ema"] = self._sampling_generator()
        return modules

    def save_checkpoint(self) -> Path:
        nets = ckpt.flatten_state_dicts(self._modules())
        optim: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {}
        for name, opt in (("opt_G", self.opt_g), ("opt_D", self.opt_d)):
            tensors, meta[name] = ckpt.optimizer_to_safe(name, opt)
            optim.update(tensors)
        optim["rng.train"] = self.rng.get_state()
        optim["rng.torch"] = torch.get_rng_state()
        state = {"belamy": __version__, "config": self.config.to_dict(), "optimizers": meta,
                 "stream": self.stream.state_dict(), "data": self.info.to_json(),
                 "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
                 "lr_scale": self.lr_scale, "recoveries": self.recoveries,
                 "best_fid": None if self.best_fid == float("inf") else self.best_fid,
                 "health": self.health.state_dict()}
        return ckpt.save_checkpoint(self.ckpt_root, self.step, nets, optim, state, self.config.keep_ckpts)

    def _newest_checkpoint(self) -> Path:
        root = self.run_dir / "checkpoints"
        if self.dist.is_main:
            ckpt.remove_partial(root)
        distributed.barrier(self.dist)
        found = ckpt.list_checkpoints(root)
        if not found:
            raise ConfigError(f"{self.run_dir} has no complete checkpoint to resume from")
        return found[-1]

    def _restore(self, path: Path) -> None:
        nets, optim, state = ckpt.load_checkpoint(path)
        modules = [("G", self.G), ("D", self.D)] + ([("G_ema", self.ema.shadow)] if self.ema is not None else [])
        for name, module in modules:
            try:
                module.load_state_dict(ckpt.unflatten(nets, name))
            except RuntimeError as e:  # e.g. a run made by an older belamy, whose recipe options built other nets
                lines = str(e).splitlines()  # PyTorch's first line names the class, the second the mismatch
                raise ckpt.CheckpointError(
                    f"{path}: its {name} does not fit the networks that this belamy builds from the run's options "
                    f"({lines[1].strip() if len(lines) > 1 else lines[0]}): resume it with the belamy version "
                    f"that made it (config.json names it), or start a new run") from None
        for name, opt in (("opt_G", self.opt_g), ("opt_D", self.opt_d)):
            ckpt.optimizer_from_safe(name, opt, optim, state["optimizers"][name])
        self.rng.set_state(optim["rng.train"])
        torch.set_rng_state(optim["rng.torch"])
        self.stream.load_state_dict(state["stream"])
        self.lr_scale, self.recoveries = float(state.get("lr_scale", 1.0)), int(state.get("recoveries", 0))
        self.best_fid = float("inf") if state.get("best_fid") is None else float(state["best_fid"])
        self.health.load_state_dict(state.get("health", {}))
        for name, scaler_state in state.get("scalers", {}).items():
            if name in self.scalers:
                self.scalers[name].load_state_dict(scaler_state)
        self.step = int(state["step"])

    def _model_config(self) -> dict[str, Any]:
        model_config = {
            "belamy": __version__, "recipe": self.config.model, "options": self.config.options,
            "data": self.info.to_json(), "latent_dim": self.latent_dim, "num_classes": self.num_classes,
            "task": self.recipe.task,
            "run": self.run_dir.name, "step": self.step, "ema": self.ema is not None,
            "train_config": self.config.to_dict(),
        }
        if isinstance(self.source, PointDistribution):
            model_config["modes"] = self.source.modes.tolist()
            model_config["mode_std"] = self.source.std
        return model_config

    def _export_model(self, folder: Path | None = None, **extra: Any) -> None:
        """The portable model: config.json + model.safetensors (the generator used for sampling), no code."""
        folder = folder or self.run_dir
        folder.mkdir(parents=True, exist_ok=True)
        G = self._sampling_generator()
        tensors = {k: v.detach().contiguous().cpu() for k, v in G.state_dict().items()}
        # weights first, config last: a folder whose config.json names this step holds this step's weights
        ckpt.save_file_atomic(tensors, folder / MODEL_WEIGHTS, metadata={"format": "pt"})
        ckpt.write_json_atomic(folder / MODEL_CONFIG, {**self._model_config(), **extra})

    def _evaluate(self) -> None:
        # The extractor may train its classifier (once, cached), which seeds torch's global generator: keep ours.
        with torch.random.fork_rng(devices=[]):
            self._measure()

    def _measure(self) -> None:
        """--eval-every: metrics of the sampling generator against the training data; the best FID's generator is
        kept in RUN/best/. Seeded apart from training (seed + 3), so measuring never changes what is learned."""
        import copy

        config = self.config
        pipeline = GeneratorPipeline(copy.deepcopy(self._sampling_generator()), self._model_config(), self.device)
        record: dict[str, Any] = {"step": self.step, "event": "eval"}
        if isinstance(self.source, PointDistribution):
            from belamy.metrics import mode_coverage

            points = pipeline.sample(config.eval_n, seed=config.seed + 3)
            record.update(mode_coverage(points.cpu(), self.source.modes, self.source.std))
            self.logger.log(record)
            return
        from belamy.metrics import evaluate

        metrics = [m.strip() for m in config.eval_metrics.split(",") if m.strip()]
        result = evaluate(config.data, pipeline, metrics, config.eval_extractor, n=config.eval_n,
                          seed=config.seed + 3, device=str(self.device), weights=config.eval_weights)
        record.update({k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        extractor = result.get("extractor", {})
        record["extractor"] = extractor.get("name", "")
        if extractor.get("accuracy") is not None:
            record["extractor_accuracy"] = extractor["accuracy"]
        self.logger.log(record)
        fid = record.get("fid")
        if fid is not None and fid < self.best_fid:
            self.best_fid = fid
            self._export_model(self.run_dir / "best", fid=fid, metrics=record)
            self.logger.message(f"best FID so far: {fid:.4g} (generator kept in {self.run_dir / 'best'})",
                                self.step, "info")


# --- small helpers ---------------------------------------------------------------------------------------------


def _accumulate(sums: dict[str, torch.Tensor], losses: dict[str, torch.Tensor], loss_key: str) -> None:
    for key, value in losses.items():
        key = loss_key if key == "loss" else key
        value = value.detach()
        sums[key] = sums[key] + value if key in sums else value.clone()


def _d_keys(sums: dict[str, torch.Tensor]) -> set[str]:
    """Figures summed once per D step (d_steps times per step) rather than once per step."""
    return {k for k in sums if k.startswith("d_") or k.endswith("_d") or k in ("gp", "r1", "ma_gp")}


def _is_finite_number(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))
