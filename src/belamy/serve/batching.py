"""Requests batched into the generator: concurrent /generate calls for one model wait a few milliseconds, then run
as one forward pass (one call of the network for many clients, as inference servers do), each getting its own rows
back. The queue is bounded: when it is full a request is refused (HTTP 503) instead of piling up."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from belamy.pipelines.generator import GeneratorPipeline


class Busy(RuntimeError):
    """The model's queue is full."""


@dataclass
class _Job:
    z: Tensor
    condition: Tensor | None
    done: asyncio.Future = field(repr=False)


class Batcher:
    """One per model: gathers jobs (latents and conditions) for up to `window` seconds or `max_batch` rows and runs
    them through the pipeline in one call, on a worker thread, one call at a time."""

    def __init__(self, pipeline: GeneratorPipeline, max_batch: int = 64, window: float = 0.005,
                 max_queue: int = 256, enabled: bool = True) -> None:
        self.pipeline, self.max_batch, self.window, self.enabled = pipeline, max_batch, window, enabled
        self.queue: asyncio.Queue[_Job] | None = None
        self.max_queue = max_queue
        self.lock = threading.Lock()  # one forward pass at a time per model
        self.task: asyncio.Task | None = None
        self.batches = 0  # forward passes run (read by tests and the load benchmark)

    async def run(self, z: Tensor, condition: Tensor | None) -> Tensor:
        """The generator's output for these rows, in [-1, 1] on the CPU."""
        if not self.enabled:
            return await asyncio.to_thread(self._forward, z, condition)
        if self.queue is None:  # made in the server's event loop, on first use
            self.queue = asyncio.Queue(self.max_queue)
            self.task = asyncio.get_running_loop().create_task(self._loop())
        job = _Job(z, condition, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Busy(f"{self.max_queue} requests are waiting for this model: try again shortly") from None
        return await job.done

    async def _loop(self) -> None:
        assert self.queue is not None
        while True:
            jobs = [await self.queue.get()]
            rows = jobs[0].z.shape[0]
            deadline = asyncio.get_running_loop().time() + self.window
            while rows < self.max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                jobs.append(job)
                rows += job.z.shape[0]
            await self._run_batch(jobs)

    async def _run_batch(self, jobs: list[_Job]) -> None:
        # Jobs with and without a condition cannot share a call; the first kind goes now, the rest in turn.
        groups: dict[bool, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.condition is None, []).append(job)
        for group in groups.values():
            try:
                out = await asyncio.to_thread(self._forward, torch.cat([j.z for j in group]),
                                              _concat_conditions([j.condition for j in group]))
            except Exception as e:  # every waiting client hears of the failure
                for job in group:
                    if not job.done.done():
                        job.done.set_exception(e)
                continue
            start = 0
            for job in group:
                rows = job.z.shape[0]
                if not job.done.done():
                    job.done.set_result(out[start:start + rows])
                start += rows

    def _forward(self, z: Tensor, condition: Tensor | None) -> Tensor:
        with self.lock:
            self.batches += 1
            return self.pipeline.from_latents(z, condition, batch_size=max(self.max_batch, z.shape[0]))

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()


def _concat_conditions(conditions: list[Tensor | None]) -> Tensor | None:
    if conditions[0] is None:
        return None
    if conditions[0].dim() == 2:  # token ids: right-pad to the longest
        width = max(c.shape[1] for c in conditions)
        conditions = [F.pad(c, (0, width - c.shape[1])) for c in conditions]
    return torch.cat(conditions)
