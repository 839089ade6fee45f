"""The ``finetune`` stage: the diagnosis model on whole training images (DESIGN §2, §4).

Initialised from ``models/encoder.pt`` (random weights when ``pretrain.method: none``),
trained on the four training subsets at ``finetune.image_size`` with Adam, linear warmup
and cosine decay, flips/rotation/crop/colour augmentation on the training device, and
kept as ``finetune.select`` says: ``best_val``, the epoch with the best validation kappa
(quadratic weighted for grading, mean per-label kappa for multi-label; 72 validation
images on the default, so the choice is noisy); ``last``, the weights at the end; or
``ema``, an exponential moving average of the weights (and BatchNorm statistics) over the
steps, decay ``finetune.ema_decay`` (docs/benchmark.md: the seed A/A of the three).
``finetune.precision`` / ``channels_last``, ``torchrun`` DDP, dvclive logging and resumable checkpoints (``models/finetune_ckpt/``) as in
``pretrain`` (shared: ``comcl.common.placement``, ``comcl.common.checkpoint``).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from comcl.common import checkpoint, distributed, manifest, paths
from comcl.common.atomic import write_text
from comcl.common.errors import ParamError
from comcl.common.live_log import open_live
from comcl.common.lr_schedule import lr_at
from comcl.common.params import Params
from comcl.common.placement import Placement
from comcl.common.seeding import rng_for
from comcl.diagnosis import classifier
from comcl.diagnosis.label_fraction import label_subset
from comcl.diagnosis.training_set import TRAIN_SUBSETS, read_training
from comcl.diagnosis.metrics import grading_metrics, multilabel_metrics
from comcl.imaging import augment
from comcl.imaging.image_cache import resized
from comcl.imaging.inference import predict
from comcl.pretraining import pixel_scale

STAGE = "stages.finetune"
SELECT = ("best_val", "last", "ema")
EMA_DECAY = 0.95   # finetune.ema_decay when the params do not set it


@dataclass
class FinetuneConfig:
    image_size: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float
    loss: str
    seed: int
    scale_mismatch: str = "warn"
    label_fraction: float = 1.0
    class_weights: str = "none"
    select: str = "best_val"
    ema_decay: float = EMA_DECAY

    @classmethod
    def from_params(cls, p: Params) -> "FinetuneConfig":
        return cls(image_size=p.integer("finetune.image_size", lo=32, hi=2048),
                   epochs=p.integer("finetune.epochs", lo=1),
                   batch_size=p.integer("finetune.batch_size", lo=1),
                   lr=p.number("finetune.lr", lo=0.0, lo_open=True),
                   weight_decay=p.number("finetune.weight_decay", lo=0.0),
                   warmup_epochs=p.number("finetune.warmup_epochs", lo=0.0),
                   loss=p.choice("finetune.loss", classifier.LOSSES),
                   seed=p.integer("finetune.seed"),
                   scale_mismatch=p.choice("finetune.scale_mismatch", pixel_scale.MODES),
                   label_fraction=p.number("finetune.label_fraction", 0.0, 1.0, lo_open=True,
                                           default=1.0),
                   class_weights=p.choice("finetune.class_weights", classifier.CLASS_WEIGHTS,
                                          default="none"),
                   select=p.choice("finetune.select", SELECT, default="best_val"),
                   ema_decay=p.number("finetune.ema_decay", 0.0, 1.0, hi_open=True,
                                      default=EMA_DECAY))


def augment_config(modality: str, size: int) -> augment.AugmentConfig:
    """Whole-image augmentation. Fundus photographs: the eight right-angle rotations and
    flips, which move pixels exactly (a resampling blur would erase lesions of one or two
    pixels at low resolution), and mild colour jitter. Chest X-rays: small rotations and
    crops, horizontal flips only."""
    if modality == "xray":
        return augment.AugmentConfig(size, scale=(0.8, 1.0), rotate_degrees=10.0, vflip_p=0.0,
                                     jitter_p=0.8, brightness=0.2, contrast=0.2,
                                     saturation=0.0, grey_p=0.0)
    return augment.AugmentConfig(size, scale=(1.0, 1.0), ratio=(1.0, 1.0), right_angles=True,
                                 jitter_p=0.8, brightness=0.2, contrast=0.2, saturation=0.2,
                                 grey_p=0.0)




def score(cfg: classifier.ClassifierConfig, out: torch.Tensor, y: np.ndarray) -> dict:
    pred, prob = classifier.decode(cfg, out)
    if cfg.task == "multilabel":
        return multilabel_metrics(y.astype(int), prob, cfg.classes)
    return grading_metrics(y, pred, len(cfg.classes))


def run(params: Params, splits: str | Path, degraded: str | Path, encoder: str | Path,
        model_out: str | Path, metrics_out: str | Path, ckpt_dir: str | Path,
        live_dir: str | Path | None = None, stop_after_epochs: int | None = None,
        workers: int | None = None, progress: bool = True, device_kind: str = "auto") -> dict:
    cfg = FinetuneConfig.from_params(params)
    info = distributed.init(device_kind)
    place = Placement.from_params(params, "finetune", info.device)
    place.setup_threads(info)
    splits, degraded, encoder = Path(splits), Path(degraded), Path(encoder)
    dinfo = manifest.read_info(degraded)
    train, val = read_training(splits)
    train = label_subset(train, cfg.label_fraction, cfg.seed)
    if cfg.batch_size % info.world:
        raise ParamError("finetune.batch_size", f"= {cfg.batch_size} must be divisible by the "
                                                f"number of processes ({info.world})")
    torch.manual_seed(cfg.seed)
    model = classifier.from_encoder(encoder, dinfo["task"], dinfo["classes"], cfg.loss,
                                    cfg.image_size)
    warning = pixel_scale.check(model.pixel_scale, cfg.image_size,
                                int(dinfo.get("image_size", cfg.image_size)), cfg.scale_mismatch)
    if warning and info.main:
        print(warning)
    job = _Finetune(cfg, info, place, model,
                    augment_config(dinfo.get("modality", "fundus"), cfg.image_size),
                    *(classifier.targets(df, model.cfg) for df in (train, val)))
    store = degraded / paths.IMAGES
    with resized(store, train["image_id"].tolist(), cfg.image_size, workers,
                 "finetune: train images", progress and info.main) as train_img, \
            resized(store, val["image_id"].tolist(), cfg.image_size, workers,
                    "finetune: val images", progress and info.main) as val_img:
        fp = checkpoint.fingerprint(
            {**params.raw("finetune"), "placement": repr(place)},
            [encoder] + [splits / f"{s}.parquet" for s in TRAIN_SUBSETS + ("val",)], STAGE)
        ckpt = Path(ckpt_dir) / checkpoint.NAME
        start = job.resume(ckpt, fp)
        live = open_live(live_dir, resume=start > 0) if info.main else None
        for epoch in range(start, cfg.epochs):
            losses = job.epoch(epoch, train_img.array, progress)
            job.validate(epoch, losses, val_img.array, live)
            job.save(ckpt, fp, epoch + 1)
            if stop_after_epochs is not None and stop_after_epochs <= epoch + 1 < cfg.epochs:
                distributed.shutdown(info)
                return {"interrupted_after_epoch": epoch + 1}
        job.validate_kept(val_img.array)
    summary = job.summary()
    if cfg.label_fraction < 1.0:
        summary.update(label_fraction=cfg.label_fraction, train_images=len(train))
    if info.main:
        classifier.save(job.kept_model(), model_out)
        write_text(metrics_out, json.dumps({k: v for k, v in summary.items() if k != "history"},
                                           indent=2, sort_keys=True) + "\n")
        if live is not None:
            live.end()
    distributed.shutdown(info)
    return summary


class _Finetune:
    """One fine-tuning run's state: model, optimiser, best epoch, history."""

    def __init__(self, cfg: FinetuneConfig, info, place: Placement, model,
                 aug: augment.AugmentConfig, y_train: np.ndarray, y_val: np.ndarray):
        self.cfg, self.info, self.place = cfg, info, place
        self.aug, self.y_train, self.y_val = aug, y_train, y_val
        self.mcfg = model.cfg
        self.model, self.net = place.model(model, info)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr,
                                    weight_decay=cfg.weight_decay, fused=True)
        weight = None
        if self.mcfg.task == "multilabel":
            weight = classifier.positive_weights(y_train, cfg.class_weights)
        elif self.mcfg.loss == "ce":
            weight = classifier.class_weights(y_train, len(self.mcfg.classes), cfg.class_weights)
        elif cfg.class_weights != "none":
            raise ParamError("finetune.class_weights", f"= {cfg.class_weights} applies to "
                                                       "finetune.loss: ce or multi-label data, not "
                                                       f"{self.mcfg.loss}")
        self.criterion = classifier.loss_fn(self.mcfg, weight)
        self.best = {"kappa": -2.0, "epoch": 0, "state": None}
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                                  use_buffers=True) if cfg.select == "ema" else None)
        self.selected_val: float | None = None
        self.history: list = []
        self.t0, self.seen = time.perf_counter(), 0

    def epoch(self, epoch: int, images: np.ndarray, progress: bool) -> list[float]:
        cfg, info = self.cfg, self.info
        n = len(images)
        steps = -(-n // cfg.batch_size)
        total, warmup = cfg.epochs * steps, int(round(cfg.warmup_epochs * steps))
        perm = rng_for(cfg.seed, "finetune", epoch).permutation(n)
        losses = []
        bar = tqdm(range(steps), desc=f"finetune epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   disable=not (progress and info.main))
        for s in bar:
            step = epoch * steps + s
            for g in self.opt.param_groups:
                g["lr"] = lr_at(step, total, cfg.lr, warmup)
            pos = (s * cfg.batch_size + np.arange(cfg.batch_size)) % n  # wraps: equal shards
            idx = np.sort(perm[pos][info.rank::info.world])
            x = torch.from_numpy(np.ascontiguousarray(images[idx])).permute(0, 3, 1, 2)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            p = augment.select(augment.sample_params(cfg.batch_size, self.aug, gen),
                               np.arange(cfg.batch_size)[info.rank::info.world])
            x = self.place.memory_format(augment.augment(self.place.to_device(x), p, self.aug))
            y = torch.from_numpy(self.y_train[idx]).to(self.place.device)
            with self.place.autocast():
                out = self.net(x)
            loss = self.criterion(out.float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            losses.append(float(loss.detach()))
            self.seen += len(idx) * info.world
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        return losses

    def validate(self, epoch: int, losses: list[float], val_images: np.ndarray, live) -> None:
        out = predict(self.model, val_images, self.cfg.image_size, self.place)
        val = score(self.mcfg, out, self.y_val)
        self.history.append({"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 5),
                             **{k: round(v, 4) for k, v in val.items()}})
        if val["kappa"] > self.best["kappa"]:
            self.best = {"kappa": val["kappa"], "epoch": epoch + 1, "state": {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}}
        if not self.info.main:
            return
        if live is not None:
            live.step = epoch
            live.log_metric("train/loss", float(np.mean(losses)))
            live.log_metric("val/kappa", val["kappa"])
            live.log_metric("val/accuracy", val["accuracy"])
            live.log_metric("train/lr", self.opt.param_groups[0]["lr"])
            live.next_step()
        print(f"finetune: epoch {epoch + 1}: loss {np.mean(losses):.4f}, "
              f"val kappa {val['kappa']:.4f}, accuracy {val['accuracy']:.4f}")

    def save(self, path: Path, fp: str, epoch: int) -> None:
        if self.info.main:
            checkpoint.save(path, fp, {
                "epoch": epoch, "model": self.model.state_dict(),
                **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
                "optimizer": self.opt.state_dict(), "best_kappa": self.best["kappa"],
                "best_epoch": self.best["epoch"], "best_state": self.best["state"],
                "history": json.dumps(self.history)})

    def resume(self, path: Path, fp: str) -> int:
        state = checkpoint.load_matching(path, fp, "finetune", verbose=self.info.main)
        if state is None:
            return 0
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.best = {"kappa": state["best_kappa"], "epoch": state["best_epoch"],
                     "state": state["best_state"]}
        self.history = json.loads(state["history"])
        if self.info.main:
            print(f"finetune: resuming from {path} after epoch {state['epoch']}")
        return int(state["epoch"])

    def kept_state(self) -> dict:
        """The weights ``finetune.select`` keeps."""
        if self.cfg.select == "ema":
            return self.ema.module.state_dict()
        if self.cfg.select == "last" or self.best["state"] is None:
            return self.model.state_dict()
        return self.best["state"]

    def validate_kept(self, val_images: np.ndarray) -> None:
        """The kept model's validation kappa (the best epoch's is already known)."""
        if self.cfg.select == "best_val":
            self.selected_val = self.best["kappa"]
        elif self.cfg.select == "last":
            self.selected_val = self.history[-1]["kappa"]
        else:
            out = predict(self.ema.module, val_images, self.cfg.image_size, self.place)
            self.selected_val = score(self.mcfg, out, self.y_val)["kappa"]

    def summary(self) -> dict:
        return {"init": self.mcfg.init, "backbone": self.mcfg.backbone,
                "best_epoch": self.best["epoch"], "best_val_kappa": round(self.best["kappa"], 4),
                "select": self.cfg.select,
                **({"selected_val_kappa": round(self.selected_val, 4)}
                   if self.selected_val is not None else {}),
                "epochs": self.cfg.epochs,
                "images_per_s": round(self.seen / max(time.perf_counter() - self.t0, 1e-9), 1),
                "history": self.history}

    def kept_model(self) -> classifier.Classifier:
        return self.as_classifier(self.kept_state())

    def as_classifier(self, state: dict) -> classifier.Classifier:
        """``state`` in a plain classifier (plain BatchNorm2d: DistBatchNorm2d shares its
        state layout), on the CPU in the default memory format."""
        out = classifier.Classifier(self.mcfg)
        out.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
        return out
