"""Where training runs: the device, and data parallelism over torch.distributed.

Every rank draws the same global point sets (same seeds) and keeps its shard of each
(torch.tensor_split, so the union over ranks is the one process's set). A loss that is a mean
over a global set is, on each rank, the sum over its shard divided by the global count: its
share. One all-reduce per loss evaluation sums the shares and their gradients, so every rank
holds the global loss and gradient and Adam and L-BFGS (whose line search then sees the same
numbers everywhere) take the same step on every rank. Statistics inside a loss (causal
weights, a gauge offset, the points where the residual is largest) are reduced over ranks too.
Without an initialised process group every operation is the plain local one.

We reduce gradients ourselves rather than wrap the model in DistributedDataParallel: a PINN's
loss differentiates the network twice (the residual needs du/dx before the backward pass), which
DDP's gradient hooks do not support, and L-BFGS evaluates the loss several times per step.
"""

import os
from datetime import timedelta

import torch
import torch.distributed as dist

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(name: str) -> torch.device:
    """cpu | cuda | auto (cuda when PyTorch sees a GPU, else cpu). Under torchrun each process
    takes the GPU of its local rank."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = ("this PyTorch was built without CUDA" if torch.version.cuda is None
               else "PyTorch sees no CUDA device (driver missing, or CUDA_VISIBLE_DEVICES empty)")
        raise ValueError(f"device 'cuda' was asked for, but {why}; use --device cpu or auto")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if local >= torch.cuda.device_count():
        raise ValueError(f"local rank {local} has no GPU of its own: this node has {torch.cuda.device_count()}; "
                         f"start at most that many processes per node")
    return torch.device("cuda", local)


def current_group() -> "Group":
    """This process's group: torch.distributed's when it is initialised, else one process."""
    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size())
    return Group()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def join(timeout_s: float = 600.0):
    """Join the process group torchrun describes: gloo for CPU tensors, nccl for CUDA ones where
    PyTorch has CUDA. A collective that waits longer than timeout_s (a peer that died or never
    came) raises instead of hanging."""
    if dist.is_initialized():
        return
    # torch.distributed.nn.functional binds group.WORLD into its functions' defaults when first
    # imported (torch.optim imports it through torch._dynamo). Imported after this point, it would
    # keep the group alive past leave(), its gloo threads running into interpreter shutdown, where
    # one still releasing a finished collective's tensor aborts the process. Imported now, it binds None.
    import torch.distributed.nn.functional  # noqa: F401

    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))


def leave():
    if dist.is_initialized():
        dist.destroy_process_group()


class Group:
    """A process's place among `world` training processes, and the reductions training needs.
    Group() is one process on its own; current_group() reads torch.distributed."""

    def __init__(self, rank: int = 0, world: int = 1):
        self.rank, self.world = rank, world

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files, shows progress and evaluates against the reference."""
        return self.rank == 0

    def shard(self, points: torch.Tensor) -> torch.Tensor:
        return points.tensor_split(self.world)[self.rank] if self.world > 1 else points

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a detached copy of `tensor`."""
        if self.world == 1:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    def share(self, values: torch.Tensor) -> torch.Tensor:
        """This rank's part of the mean of `values` over every rank: summed over ranks (with its
        gradient) it is the global mean. One process: values.mean()."""
        if self.world == 1:
            return values.mean()
        count = self.sum(torch.tensor(float(values.numel()), dtype=values.dtype, device=values.device))
        return values.sum() / count

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over dim 0 of `values` across every rank (no gradient)."""
        if self.world == 1:
            return values.mean(dim=0)
        values = values.detach()
        count = torch.tensor([float(len(values))], dtype=values.dtype, device=values.device)
        total = self.sum(torch.cat([values.sum(dim=0).reshape(-1), count]))
        return (total[:-1] / total[-1]).reshape(values.shape[1:])

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """The rows of every rank's `values`, in rank order (shards of tensor_split come back whole)."""
        if self.world == 1:
            return values
        sizes = self.sum(torch.zeros(self.world, dtype=torch.long, device=values.device)
                         .index_fill(0, torch.tensor([self.rank], device=values.device), len(values)))
        padded = values.new_zeros((int(sizes.max()), *values.shape[1:]))
        padded[:len(values)] = values.detach()
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return torch.cat([p[:int(n)] for p, n in zip(parts, sizes)])

    def sum_each(self, tensors: list) -> list:
        """Each tensor (None: zero) summed over ranks, in one all-reduce."""
        if self.world == 1:
            return tensors
        like = next(t for t in tensors if t is not None)
        flat = self.sum(torch.cat([t.reshape(-1) if t is not None else like.new_zeros(0) for t in tensors]))
        out, start = [], 0
        for t in tensors:
            n = t.numel() if t is not None else 0
            out.append(flat[start:start + n].view_as(t) if t is not None else None)
            start += n
        return out

    def reduce_step(self, params, total: torch.Tensor, parts: dict) -> tuple[float, dict]:
        """After backward() on this rank's share of the loss (`total`): every parameter's .grad
        becomes the global gradient, and the global loss and parts come back as floats, all
        in one all-reduce."""
        if self.world == 1:
            return total.item(), parts
        values = torch.tensor([total.item(), *parts.values()], dtype=total.dtype, device=total.device)
        grads = [p.grad for p in params]
        *grads, values = self.sum_each(grads + [values])
        for p, g in zip(params, grads):
            if g is not None:
                p.grad.copy_(g)
        values = values.tolist()
        return values[0], dict(zip(parts, values[1:]))

    def broadcast(self, tensors):
        """Rank 0's values into every rank's tensors (the same start, whatever each rank built)."""
        if self.world > 1:
            for t in tensors:
                dist.broadcast(t.data, src=0)

    def barrier(self):
        if self.world > 1:
            dist.barrier()
