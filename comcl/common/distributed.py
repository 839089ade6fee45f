"""Multi-process training under ``torchrun``: process group, gathering, synchronised BN.

``torchrun --nproc_per_node N -m stages.pretrain`` sets RANK / WORLD_SIZE / LOCAL_RANK;
``init`` then joins the group (NCCL on GPUs, gloo on CPUs). A single plain process needs
none of it. Contrastive losses need every embedding of the global batch: ``gather``
concatenates all ranks' embeddings, keeping the gradient of the local part, so each rank
computes the same global loss; the loss is multiplied by the world size before
``backward`` because DDP averages gradients over ranks.

BatchNorm statistics must also cover the global batch for a multi-process run to equal
a single-process one: ``torch.nn.SyncBatchNorm`` on GPUs, ``DistBatchNorm1d/2d`` below on
CPUs (PyTorch's SyncBatchNorm refuses CPU tensors).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init(device_kind: str = "auto") -> DistInfo:
    cuda = torch.cuda.is_available() and device_kind != "cpu"
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(device=torch.device("cuda" if cuda else "cpu"))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank, world, local, torch.device(f"cuda:{local}" if cuda else "cpu"))


def shutdown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``x`` from every rank in rank order; gradient flows to the local part."""
    if not info.active:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[info.rank] = x
    return torch.cat(parts)


def broadcast_object(obj, info: DistInfo):
    if not info.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _DistBatchNorm:
    """BatchNorm whose training statistics cover every rank's batch (gloo, CPU).

    Sums and sums of squares are all-reduced with autograd support, so the forward pass
    and the gradients equal those of one process holding the whole batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        c = x.shape[1]
        dims = [0] + list(range(2, x.ndim))
        shape = [1, c] + [1] * (x.ndim - 2)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), x.new_tensor([x.numel() / c])])
        if dist.is_initialized() and dist.get_world_size() > 1:
            stats = dist_nn.all_reduce(stats)
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0.0)
        with torch.no_grad():
            if self.track_running_stats and self.running_mean is not None:
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else \
                    1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)) * m)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


class DistBatchNorm1d(_DistBatchNorm, nn.BatchNorm1d):
    pass


class DistBatchNorm2d(_DistBatchNorm, nn.BatchNorm2d):
    pass


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d by its Dist version, keeping parameters and buffers."""
    out = module
    for plain, dist_cls in ((nn.BatchNorm2d, DistBatchNorm2d), (nn.BatchNorm1d, DistBatchNorm1d)):
        if type(module) is plain:
            out = dist_cls(module.num_features, module.eps, module.momentum, module.affine,
                           module.track_running_stats)
            out.load_state_dict(module.state_dict())
    for name, child in module.named_children():
        out.add_module(name, convert_batchnorm(child))
    return out


def sync_batchnorm(model: nn.Module, info: DistInfo) -> nn.Module:
    if info.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model) if info.active else model
    return convert_batchnorm(model)
