"""Load on `belamy serve`: N concurrent clients over loopback, with request batching on and off.

    python benchmarks/serve_load.py [--clients 32] [--requests 600] [--images 1] [--run runs/NAME]

Starts `belamy serve` as a separate process (as a user would), waits for /health, then `--clients` concurrent clients
send `--requests` POST /generate calls in all (each a random seed and class, `--images` images, a PNG grid back) and
the figures are: requests/s, p50/p99 latency, and errors (non-200 answers or failed connections: must be zero).
The same model, load and client code run twice, once with `--no-batching` (one forward pass per request), and the
ratio of the two throughputs is printed. Without `--run`, a class-conditional cgan on MNIST at 32x32 is trained for a
few steps first (its weights do not change the cost of a forward pass).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import belamy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int, batching: bool, watermark: bool) -> subprocess.Popen:
    command = [sys.executable, "-m", "belamy.cli", "serve", str(run), "--port", str(port)]
    command += [] if batching else ["--no-batching"]
    command += [] if watermark else ["--no-watermark"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"belamy serve exited with {server.returncode}: {server.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("belamy serve did not answer /health within 120 s")


async def load(url: str, model: str, classes: int, clients: int, requests: int, images: int,
               seed: int) -> tuple[float, list[float], int]:
    """(seconds, per-request latencies, errors) for `requests` calls shared by `clients` concurrent clients."""
    rng = random.Random(seed)
    bodies = [{"model": model, "n": images, "seed": rng.randrange(2 ** 31), "class": rng.randrange(classes)}
              for _ in range(requests)]
    latencies: list[float] = []
    errors = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while bodies:
            body = bodies.pop()
            start = time.perf_counter()
            try:
                response = await http.post(url, json=body)
                ok = response.status_code == 200 and response.content[:4] == b"\x89PNG"
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return time.perf_counter() - start, latencies, errors


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained class-conditional run or model folder")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--images", type=int, default=1, help="images per request")
    parser.add_argument("--no-watermark", action="store_true", help="PNG metadata only (the server's default "
                                                                    "marks every image)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or belamy.train(model="cgan", data="mnist", resolution=32, steps=5, out=tmp, name="load",
                                       progress=False, sample_every=0, ckpt_every=0).path
        pipeline = belamy.load(run)
        model, classes = Path(run).resolve().name, pipeline.num_classes
        if not classes:
            parser.error(f"{run} is not class-conditional: give a cgan/acgan run")
        print(f"model {model} ({pipeline.config.get('recipe')}, {pipeline.data.shape[-1]} px), {args.clients} clients, "
              f"{args.requests} requests of {args.images} image(s), watermark {'off' if args.no_watermark else 'on'}")
        print(f"{'batching':>9s} {'req/s':>8s} {'img/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s}")
        throughput, failed = {}, 0
        for batching in (True, False):
            port = free_port()
            server = start_server(Path(run), port, batching, not args.no_watermark)
            try:
                url = f"http://127.0.0.1:{port}/generate"
                asyncio.run(load(url, model, classes, 4, 16, args.images, seed=1))  # warm-up
                seconds, latencies, errors = asyncio.run(load(url, model, classes, args.clients, args.requests,
                                                              args.images, seed=0))
            finally:
                server.terminate()
                server.wait(30)
            throughput[batching], failed = args.requests / seconds, failed + errors
            print(f"{'on' if batching else 'off':>9s} {throughput[batching]:8.1f} "
                  f"{throughput[batching] * args.images:8.1f} {percentile(latencies, 50) * 1e3:8.1f} "
                  f"{percentile(latencies, 99) * 1e3:8.1f} {errors:6d}", flush=True)
        print(f"throughput ratio, batching on / off: {throughput[True] / throughput[False]:.2f}")
    if failed:
        sys.exit(f"{failed} requests failed")


if __name__ == "__main__":
    main()
