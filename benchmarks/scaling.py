"""Throughput of `belamy train` in 1 vs N processes (torchrun / DDP), measured in the same run.

    python benchmarks/scaling.py                       # DCGAN 32x32 on mnist, global batch 64, 1 and 2 processes
    python benchmarks/scaling.py --device cuda --nprocs 1,2,4,8 --precision bf16 --resolution 64

Each configuration trains `--steps` steps through the CLI (`belamy train --nproc N`, which launches torchrun) and
reads images/second from the run's log, skipping the first logging interval (start-up, allocator warm-up). On a CPU
every process gets cores // N intra-op threads, so 1 process x 2 threads is compared with 2 processes x 1 thread.
The last line reads `ratio: X`: img/s of the largest N over img/s of 1 process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(nproc: int, args: argparse.Namespace, out: Path) -> dict:
    threads = max(1, (os.cpu_count() or 1) // nproc) if args.device == "cpu" else 1
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    name = f"n{nproc}"
    cmd = [sys.executable, "-m", "belamy", "train", "--model", args.model, "--data", args.data,
           "--resolution", str(args.resolution), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
           "--log-every", str(args.log_every), "--sample-every", "0", "--ckpt-every", "0", "--ema-decay", "0",
           "--precision", args.precision, "--device", args.device, "--out", str(out), "--name", name,
           "--no-progress", "--nproc", str(nproc)]
    if args.sync_bn:
        cmd.append("--sync-bn")
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    records = [json.loads(line) for line in (out / name / "log.jsonl").read_text().splitlines()]
    rates = [r["img_per_s"] for r in records if "img_per_s" in r][1:]  # the first interval includes warm-up
    start = records[0]
    return {"processes": nproc, "threads_each": threads, "batch_per_process": start["batch_per_process"],
            "img_per_s": sum(rates) / len(rates), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sync-bn", action="store_true")
    parser.add_argument("--nprocs", default="1,2", help="comma-separated process counts")
    args = parser.parse_args()
    counts = [int(n) for n in args.nprocs.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, args, Path(tmp)) for n in counts]
    print(f"{args.model} {args.resolution}x{args.resolution} on {args.data}, global batch {args.batch_size}, "
          f"{args.precision}, {args.device}, {args.steps} steps")
    print("| processes | threads each | batch per process | img/s | wall s |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['processes']} | {r['threads_each']} | {r['batch_per_process']} | {r['img_per_s']:.1f} | "
              f"{r['wall_s']:.1f} |")
    print(f"ratio: {results[-1]['img_per_s'] / results[0]['img_per_s']:.2f}")


if __name__ == "__main__":
    main()
