"""Images/second of a DCGAN step at 32x32, batch 64: belamy's engine vs a plain eager loop written as in the
pytorch/examples DCGAN (same networks, same data, same number of steps), and the sample quality both reach.

    python benchmarks/train_throughput.py [--steps 300] [--threads N] [--device cuda]

Quality is the Frechet distance of a small MNIST classifier's features (lower is better) between 1,000 real and
1,000 generated digits after the same number of steps. The last line reads `ratio: X` (belamy img/s over baseline).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn as nn

import belamy
from belamy.data import open_data
from belamy.metrics.classifier import classifier_frechet_distance, train_classifier
from belamy.nets import DCGANDiscriminator, DCGANGenerator

RES, CHANNELS, BATCH, NZ = 32, 3, 64, 100


class ExampleStyleDataset(torch.utils.data.Dataset):
    """Per-item float conversion and normalization, as torchvision's ToTensor + Normalize do in the example."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return (self.images[i].float() / 255 - 0.5) / 0.5, 0


def baseline(images: torch.Tensor, steps: int, seed: int, device: torch.device) -> tuple[float, nn.Module]:
    """The training loop of pytorch/examples dcgan/main.py, eager fp32, with belamy's DCGAN networks."""
    torch.manual_seed(seed)
    netG = DCGANGenerator((CHANNELS, RES, RES), NZ, 64).to(device)
    netD = DCGANDiscriminator((CHANNELS, RES, RES), 64).to(device)
    criterion = nn.BCEWithLogitsLoss()  # the example's Sigmoid + BCELoss, in its stable fused form
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = torch.utils.data.DataLoader(ExampleStyleDataset(images), batch_size=BATCH, shuffle=True,
                                         drop_last=True)
    step, timed_from, t0 = 0, 10, 0.0
    while step < steps:
        for data, _ in loader:
            if step == timed_from:
                t0 = time.perf_counter()
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            real = data.to(device)
            label = torch.full((real.size(0),), 1.0, device=device)
            output = netD(real)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = torch.sigmoid(output).mean().item()
            noise = torch.randn(real.size(0), NZ, device=device)
            fake = netG(noise)
            label.fill_(0.0)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            optimizerD.step()
            # (2) Update G network: maximize log(D(G(z)))
            netG.zero_grad()
            label.fill_(1.0)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            optimizerG.step()
            _ = (errD_real + errD_fake).item(), errG.item(), D_x  # the example prints these every step
            step += 1
            if step == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return (steps - timed_from) * BATCH / elapsed, netG.eval()


def belamy_run(steps: int, seed: int, out: str, device: torch.device
               ) -> tuple[float, belamy.pipelines.GeneratorPipeline]:
    run = belamy.train(model="dcgan", data="mnist", resolution=RES, channels=CHANNELS, batch_size=BATCH,
                       steps=steps, seed=seed, log_every=10, sample_every=0, ckpt_every=0, out=out, name="bench",
                       progress=False, device=str(device))
    records = [json.loads(line) for line in (run.path / "log.jsonl").read_text().splitlines()]
    rates = [r["img_per_s"] for r in records if "img_per_s" in r][1:]  # the first interval is warm-up
    return sum(rates) / len(rates), belamy.load(run.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu or cuda: both loops run there")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    data = open_data("mnist", resolution=RES, channels=CHANNELS)
    classifier = train_classifier(data, epochs=3).net
    real = data.images[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:1000]]
    real = real.float() / 127.5 - 1

    base_rate, base_G = baseline(data.images, args.steps, args.seed, device)
    with torch.no_grad():
        base_fake = base_G(torch.randn(1000, NZ, generator=torch.Generator().manual_seed(1)).to(device)).cpu()
    base_fd = classifier_frechet_distance(classifier, real, base_fake)

    with tempfile.TemporaryDirectory() as out:
        our_rate, pipeline = belamy_run(args.steps, args.seed, out, device)
        our_fd = classifier_frechet_distance(classifier, real, pipeline.sample(1000, seed=1).cpu())

    print(f"DCGAN {RES}x{RES}x{CHANNELS}, batch {BATCH}, {args.steps} steps, {args.threads} threads, "
          f"torch {torch.__version__}, "
          + (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU capability {torch.backends.cpu.get_cpu_capability()}"))
    print(f"baseline (pytorch/examples loop, eager fp32): {base_rate:8.1f} img/s   quality FD {base_fd:8.2f}")
    print(f"belamy default path:                          {our_rate:8.1f} img/s   quality FD {our_fd:8.2f}")
    print(f"ratio: {our_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
