"""Training on several processes with ``torch.distributed`` (launched by ``torchrun``).

A run launched by ``torchrun --nproc_per_node=N`` (one or many nodes) has one process per rank;
``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``.  ``Ranks.from_environment``
reads them and joins the process group: NCCL when the run uses CUDA GPUs (rank ``r`` on
``cuda:LOCAL_RANK``), gloo on CPUs.  Without those variables (Slicer, a plain command, a
notebook) it returns a single-rank ``Ranks`` whose collectives do nothing, so one code path
serves both.

Conventions every distributed loop here follows:

- the batch size the user gives is the global batch; each rank takes its contiguous share of
  a batch drawn from a stream that every rank holds in the same state, so N ranks see exactly
  the samples one process would (the role ``DistributedSampler`` plays for epoch-based loaders);
- gradients are averaged by ``DistributedDataParallel``; losses are means over samples, so N
  ranks take the step one process takes on the global batch;
- randomness inside a step (dropout, noise, target domains) comes from per-rank streams
  derived from the run's seed (``rank_seed``);
- rank 0 alone reads and writes files (checkpoints, cards, logs, pictures) and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import MedSynthInputError

#: how to launch a command on several processes or GPUs (printed by ``--help`` texts and the CLI)
LAUNCH_HINT = ("several GPUs or processes: torchrun --nproc_per_node=N --no-python medsynth ... "
               "(multi-node: add --nnodes, --node_rank and --rdzv_endpoint; see docs/scaling.md)")


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of rank ``rank``'s own stream in a run seeded ``seed`` (rank 0 of a run that
    starts at step 0 keeps ``seed``; other ranks, and ranks that join a resumed run at ``step``,
    get independent streams from numpy's ``SeedSequence``)."""
    if rank == 0 and step == 0:
        return int(seed)
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(rank), int(step)]).generate_state(1, np.uint32)[0])


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed run (a single process when ``world_size`` is 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls, device_type: str = "cpu") -> "Ranks":
        """The ranks ``torchrun`` describes in the environment, joining (once) the process group
        with the backend for ``device_type``; a single rank when there is no such environment."""
        world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world_size <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_available():
            raise MedSynthInputError("This torch was built without torch.distributed; run in one process.")
        ranks = cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            backend = "nccl" if device_type == "cuda" else "gloo"
            if backend == "nccl":
                import torch

                torch.cuda.set_device(ranks.local_rank)
            dist.init_process_group(backend=backend)
        return ranks

    def device(self, device: str) -> str:
        """This rank's device: ``cuda:LOCAL_RANK`` for a CUDA run, else ``device`` unchanged."""
        return f"cuda:{self.local_rank}" if self.active and device.startswith("cuda") else device

    def shard(self, count: int) -> slice:
        """This rank's contiguous share of ``count`` items (``count`` divisible by the world size)."""
        if count % self.world_size:
            raise MedSynthInputError(f"The batch size ({count}) is the global batch: it must be divisible by the "
                                     f"number of processes ({self.world_size}).")
        share = count // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def wrap(self, module):
        """``module`` in ``DistributedDataParallel`` (as is for one rank).  Buffers are not
        broadcast at every forward: a GAN calls its discriminator several times per step, and
        every rank updates its buffers (spectral-norm vectors) by the same rule anyway."""
        if not self.active or not any(p.requires_grad for p in module.parameters()):
            return module
        import inspect

        import torch
        from torch.nn.parallel import DistributedDataParallel

        # newer torch names the option forward_sync_buffers (buffers are still synced at init)
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(
            DistributedDataParallel).parameters else "broadcast_buffers"
        device = next(module.parameters()).device
        if device.type == "cuda":
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)  # GPU only in torch
            return DistributedDataParallel(module, device_ids=[device.index], **{no_sync: False})
        return DistributedDataParallel(module, **{no_sync: False})

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list | None:
        """Every rank's ``value`` on rank 0 (in rank order); None elsewhere."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of each named number (every rank must pass the same names)."""
        if not self.active:
            return values
        import torch
        import torch.distributed as dist

        names = sorted(values)
        backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        total = torch.tensor([float(values[name]) for name in names], dtype=torch.float64, device=backend_device)
        dist.all_reduce(total)
        return {name: float(v) / self.world_size for name, v in zip(names, total.cpu().tolist())}

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()


def join(accelerator):
    """(``accelerator`` moved to this rank's device, ``Ranks``) for a run under torchrun; the
    accelerator as it is and one rank otherwise."""
    import dataclasses

    ranks = Ranks.from_environment(accelerator.device_type)
    return dataclasses.replace(accelerator, device=ranks.device(accelerator.device)), ranks


def finish(ranks: Ranks) -> None:
    """Leave the process group (at the end of a distributed command)."""
    if ranks.active:
        import gc

        import torch.distributed as dist

        gc.collect()  # DistributedDataParallel wrappers left in reference cycles go before their process group
        if dist.is_initialized():
            dist.destroy_process_group()
