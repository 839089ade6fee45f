"""Pretraining objectives behind one interface: ``objective(views, meta) -> (loss, stats)``.

``views`` are the augmented two views of this rank's patches (view 1 of n patches, then
view 2); ``meta`` a ``StepMeta``. ``stats`` maps each loss term to (its detached loss, its
statistics: k, negatives, similarities). ``after_step()`` runs after the optimiser step
(MoCo's momentum update and queue; nothing otherwise). The loop calls only this, never
a method by name: CoMCL's levels (``comcl``), ``single_level`` and ``simclr`` are
``LevelObjective`` with other terms; ``moco`` is ``comcl.pretraining.moco.MoCo``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from comcl.common import distributed
from comcl.pretraining import contrastive
from comcl.pretraining.config import PretrainConfig
from comcl.pretraining.memory import ViewMemory
from comcl.pretraining.moco import MoCo


@dataclass
class StepMeta:
    pool: torch.Tensor       # (2V,) pool id of every view of the global batch (gather order)
    instance: torch.Tensor   # (2V,) the view's patch
    step: int                # 1-based step number, for SPL
    total_steps: int


class LevelObjective(nn.Module):
    """A weighted sum of contrastive levels on the gathered global batch (DESIGN §4.2);
    with ``memory`` > 0, also against the last ``memory`` views of earlier steps
    (``comcl.pretraining.memory``), written after each optimiser step."""

    def __init__(self, net: nn.Module, terms: list[tuple[str, float]], temperature: float,
                 spl: dict | None, info: distributed.DistInfo, memory: int = 0,
                 dim: int = 128, device: torch.device | str = "cpu"):
        super().__init__()
        object.__setattr__(self, "net", net)   # trained and saved by the loop
        self.terms = terms
        self.temperature = temperature
        self.spl = spl          # {"min_fraction", "order"} or None
        self.info = info
        self.memory = ViewMemory(memory, dim, device) if memory else None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, views: torch.Tensor, meta: StepMeta) -> tuple[torch.Tensor, dict]:
        z = distributed.gather(self.net(views), self.info)
        spl = None if self.spl is None else {
            "step": meta.step, "total_steps": meta.total_steps, **self.spl}
        bank = self.memory.bank() if self.memory is not None else None
        total = z.sum() * 0.0
        stats = {}
        for name, weight in self.terms:
            loss, st = contrastive.level_loss(z, meta.pool, meta.instance, name,
                                              self.temperature, spl, bank)
            stats[name] = (loss.detach(), st)
            total = total + weight * loss
        if self.memory is not None:
            self._last = (z.detach(), meta.pool)
        return total, stats

    def after_step(self) -> None:
        if self.memory is not None and self._last is not None:
            self.memory.push(*self._last)
            self._last = None


def build(cfg: PretrainConfig, model: nn.Module, net: nn.Module,
          info: distributed.DistInfo) -> nn.Module:
    """The objective of ``cfg.method`` around the trained ``model`` (``net``: the same,
    DDP-wrapped under torchrun)."""
    if cfg.method == "moco":
        return MoCo(model, net, cfg.moco_queue, cfg.moco_momentum, cfg.temperature, info=info)
    spl = ({"min_fraction": cfg.spl_min_fraction, "order": cfg.spl_order,
            "ramp_fraction": cfg.spl_ramp_fraction}
           if cfg.uses_spl() else None)
    return LevelObjective(net, cfg.loss_terms(), cfg.temperature, spl, info, cfg.memory,
                          device=next(model.parameters()).device)
