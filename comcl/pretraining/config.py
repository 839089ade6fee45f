"""The ``pretrain`` and ``spl`` params, validated (errors name the key)."""
from __future__ import annotations

from dataclasses import dataclass, field

from comcl.common.errors import ParamError
from comcl.common.params import Params
from comcl.pretraining import contrastive

METHODS = ("comcl", "single_level", "simclr", "moco", "none")


@dataclass
class PretrainConfig:
    method: str
    backbone: str
    weights: str | None
    input_size: int
    per_pool: int
    epochs: int
    steps_per_epoch: int | None
    lr: float
    weight_decay: float
    warmup_epochs: float
    temperature: float
    levels: dict = field(default_factory=dict)
    level_weights: list = field(default_factory=list)
    quality_view_p: float = 0.5
    moco_queue: int = 1024
    moco_momentum: float = 0.99
    probe_every: int = 1
    probe_fraction: float = 0.2
    ckpt_every: int = 1
    log_every: int = 5
    seed: int = 0
    spl_enabled: bool = True
    spl_min_fraction: float = 0.2
    spl_order: str = "easy_first"

    @classmethod
    def from_params(cls, p: Params) -> "PretrainConfig":
        levels = {lv: p.boolean(f"pretrain.levels.{lv}") for lv in contrastive.LEVELS}
        method = p.choice("pretrain.method", METHODS)
        if method == "comcl" and not any(levels.values()):
            raise ParamError("pretrain.levels", "switches every level off; enable at least one")
        return cls(
            method=method,
            backbone=p.string("pretrain.backbone"),
            weights=p.string("pretrain.weights", allow_none=True),
            input_size=p.integer("pretrain.input_size", lo=16, hi=1024),
            per_pool=p.integer("pretrain.per_pool", lo=1),
            epochs=p.integer("pretrain.epochs", lo=1),
            steps_per_epoch=p.integer("pretrain.steps_per_epoch", lo=1, allow_none=True),
            lr=p.number("pretrain.lr", lo=0.0, lo_open=True),
            weight_decay=p.number("pretrain.weight_decay", lo=0.0),
            warmup_epochs=p.number("pretrain.warmup_epochs", lo=0.0),
            temperature=p.number("pretrain.temperature", lo=0.0, lo_open=True),
            levels=levels,
            level_weights=p.number_list("pretrain.level_weights", length=3, lo=0.0),
            quality_view_p=p.number("pretrain.quality_view_p", 0.0, 1.0),
            moco_queue=p.integer("pretrain.moco.queue", lo=1),
            moco_momentum=p.number("pretrain.moco.momentum", 0.0, 1.0),
            probe_every=p.integer("pretrain.probe_every", lo=1),
            probe_fraction=p.number("pretrain.probe_fraction", 0.0, 1.0, hi_open=True),
            ckpt_every=p.integer("pretrain.ckpt_every", lo=1),
            log_every=p.integer("pretrain.log_every", lo=1),
            seed=p.integer("pretrain.seed"),
            spl_enabled=p.boolean("spl.enabled"),
            spl_min_fraction=p.number("spl.min_fraction", 0.0, 1.0),
            spl_order=p.choice("spl.order", contrastive.SPL_ORDERS),
        )

    def loss_terms(self) -> list[tuple[str, float]]:
        if self.method == "comcl":
            return [(lv, w) for (lv, on), w in zip(self.levels.items(), self.level_weights) if on]
        if self.method == "single_level":
            return [("single_level", 1.0)]
        if self.method == "simclr":
            return [("simclr", 1.0)]
        return [("moco", 1.0)]

    def uses_spl(self) -> bool:
        return self.spl_enabled and self.method in ("comcl", "single_level")
