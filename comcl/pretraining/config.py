"""The ``pretrain`` and ``spl`` params, validated (errors name the key)."""
from __future__ import annotations

from dataclasses import dataclass, field

from comcl.common.errors import ParamError
from comcl.common.lr_schedule import SCHEDULES
from comcl.common.params import Params
from comcl.imaging.augment import AugmentConfig
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
    quality_view_severity: float = 1.0
    head_out_bn: bool = False
    memory: int = 0
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
    spl_ramp_fraction: float = 1.0
    augment: dict = field(default_factory=dict)
    lr_schedule: str = "cosine"

    @classmethod
    def from_params(cls, p: Params) -> "PretrainConfig":
        levels = {lv: p.boolean(f"pretrain.levels.{lv}") for lv in contrastive.LEVELS}
        method = p.choice("pretrain.method", METHODS)
        if method == "comcl" and not any(levels.values()):
            raise ParamError("pretrain.levels", "switches every level off; enable at least one")
        memory = p.integer("pretrain.memory", lo=0, hi=65536, default=0)
        if method in ("moco", "none") and memory:
            raise ParamError("pretrain.memory", f"applies to the level objectives (comcl, "
                             f"single_level, simclr), not to pretrain.method {method!r}; set it to 0")
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
            quality_view_severity=p.number("pretrain.quality_view_severity", 0.0, 2.0),
            head_out_bn=p.boolean("pretrain.head_out_bn", default=False),
            memory=memory,
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
            spl_ramp_fraction=p.number("spl.ramp_fraction", 0.0, 1.0, lo_open=True),
            augment=_augment_params(p),
            lr_schedule=p.choice("pretrain.lr_schedule", SCHEDULES, default="cosine"),
        )

    def augment_config(self) -> AugmentConfig:
        """The views' augmentation (``pretrain.augment``) at ``pretrain.input_size``."""
        a = self.augment
        return AugmentConfig(self.input_size, scale=tuple(a["crop_scale"]),
                             right_angles=a["rotation"] == "right_angles",
                             jitter_p=a["jitter_p"], brightness=a["brightness"],
                             contrast=a["contrast"], saturation=a["saturation"],
                             grey_p=a["grey_p"])

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


def _augment_params(p: Params) -> dict:
    k = "pretrain.augment"
    scale = p.number_list(f"{k}.crop_scale", length=2, lo=0.05, hi=1.0)
    if scale[0] > scale[1]:
        raise p.error(f"{k}.crop_scale", f"must be [low, high] with low <= high, got {scale}")
    return {"crop_scale": scale,
            "rotation": p.choice(f"{k}.rotation", ("right_angles", "free")),
            "jitter_p": p.number(f"{k}.jitter_p", 0.0, 1.0),
            "brightness": p.number(f"{k}.brightness", 0.0, 1.0),
            "contrast": p.number(f"{k}.contrast", 0.0, 1.0),
            "saturation": p.number(f"{k}.saturation", 0.0, 1.0),
            "grey_p": p.number(f"{k}.grey_p", 0.0, 1.0)}
