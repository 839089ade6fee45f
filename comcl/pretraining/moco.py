"""MoCo v2 (basic CL baseline) as one ``nn.Module``, after facebookresearch/moco ``builder.py``.

The key encoder is a momentum copy of the query model; the queue of past keys and its
pointer are buffers, so ``state_dict`` checkpoints them with the module. The query model
(the one being trained, DDP-wrapped or not) is held outside the module's parameters: it
is trained and saved by the loop, and ``forward`` only calls it.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from comcl.common import distributed
from comcl.pretraining import contrastive


class MoCo(nn.Module):
    def __init__(self, model: nn.Module, net: nn.Module, queue: int, momentum: float,
                 temperature: float, dim: int = 128, info=None):
        super().__init__()
        self.key_encoder = copy.deepcopy(model).requires_grad_(False)
        object.__setattr__(self, "query_model", model)   # not a submodule: see the docstring
        object.__setattr__(self, "net", net)
        self.momentum = momentum
        self.temperature = temperature
        self.info = info or distributed.DistInfo()
        init = torch.randn(queue, dim, generator=torch.Generator().manual_seed(0))
        device = next(model.parameters()).device
        self.register_buffer("queue", nn.functional.normalize(init, dim=1).to(device))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long, device=device))
        self._keys: torch.Tensor | None = None

    def forward(self, views: torch.Tensor, meta) -> tuple[torch.Tensor, dict]:
        """InfoNCE of each query (view 1) against its key (view 2) and the queue."""
        n = views.shape[0] // 2
        q = self.net(views[:n])
        with torch.no_grad():
            k = self.key_encoder(views[n:])
        qf, kf = q.float(), k.float()
        with torch.autocast(device_type=q.device.type, enabled=False):
            logits = torch.cat([(qf * kf).sum(1, keepdim=True), qf @ self.queue.T], 1)
            logits = logits / self.temperature
        pos = torch.zeros_like(logits, dtype=torch.bool)
        pos[:, 0] = True
        self._keys = kf
        loss = contrastive.multi_positive_info_nce(logits, pos, ~pos)
        return loss, {"moco": (loss.detach(), {"k": self.queue.shape[0]})}

    @torch.no_grad()
    def after_step(self) -> None:
        """Momentum update of the key encoder, then the step's keys into the queue."""
        for k, q in zip(self.key_encoder.parameters(), self.query_model.parameters()):
            k.mul_(self.momentum).add_(q.detach(), alpha=1 - self.momentum)
        for k, q in zip(self.key_encoder.buffers(), self.query_model.buffers()):
            k.copy_(q)
        keys = distributed.gather(self._keys, self.info)
        n, size = keys.shape[0], self.queue.shape[0]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(n, device=keys.device) + ptr) % size
        self.queue[idx] = keys
        self.queue_ptr.fill_((ptr + n) % size)
