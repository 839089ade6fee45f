"""The ``finetune`` stage: the diagnosis model on whole training images (DESIGN §2, §4).

Initialised from ``models/encoder.pt`` (random weights when ``pretrain.method: none``),
trained on the four training subsets at ``finetune.image_size`` with Adam, linear warmup
and cosine decay, flips/rotation/crop/colour augmentation on the training device, and
selected by the validation kappa (quadratic weighted for grading, mean per-label kappa
for multi-label) after each epoch. CUDA (bf16 autocast, channels_last), ``torchrun``
DDP, dvclive logging and resumable checkpoints (``models/finetune_ckpt/``) as in
``pretrain``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from comcl import augment, classifier, distributed, manifest, paths
from comcl.atomic import atomic_file, write_text
from comcl.live_log import open_live
from comcl.diagnosis_metrics import grading_metrics, multilabel_metrics
from comcl.errors import DataError, ParamError
from comcl.image_cache import resized
from comcl.params import Params
from comcl.schedule import lr_at
from comcl.seeding import rng_for
from comcl.torch_setup import setup_threads

CHECKPOINT = "last.pt"
TRAIN_SUBSETS = ("HL", "LL", "HH", "LH")


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

    @classmethod
    def from_params(cls, p: Params) -> "FinetuneConfig":
        return cls(image_size=p.integer("finetune.image_size", lo=32, hi=2048),
                   epochs=p.integer("finetune.epochs", lo=1),
                   batch_size=p.integer("finetune.batch_size", lo=1),
                   lr=p.number("finetune.lr", lo=0.0, lo_open=True),
                   weight_decay=p.number("finetune.weight_decay", lo=0.0),
                   warmup_epochs=p.number("finetune.warmup_epochs", lo=0.0),
                   loss=p.choice("finetune.loss", classifier.LOSSES),
                   seed=p.integer("finetune.seed"))


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


def read_training(splits: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pd.concat([manifest.read(splits / f"{s}.parquet", splits=("train",))
                       for s in TRAIN_SUBSETS], ignore_index=True)
    val = manifest.read(splits / "val.parquet", splits=("val",))
    if train.empty or val.empty:
        raise DataError(f"{splits}: the {'training' if train.empty else 'validation'} split is empty")
    return train.sort_values("image_id", kind="stable").reset_index(drop=True), val


@torch.no_grad()
def predict(model, images: np.ndarray, size: int, dev, batch: int = 32):
    """Raw model outputs for uint8 (N, S, S, C) images, without augmentation."""
    was = model.training
    model.eval()
    outs = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).permute(0, 3, 1, 2).to(dev)
        x = augment.plain(x, size)
        if dev.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            outs.append(model(x).float().cpu())
    model.train(was)
    return torch.cat(outs)


def score(cfg: classifier.ClassifierConfig, out: torch.Tensor, y: np.ndarray) -> dict:
    pred, prob = classifier.decode(cfg, out)
    if cfg.task == "multilabel":
        return multilabel_metrics(y.astype(int), prob, cfg.classes)
    return grading_metrics(y, pred, len(cfg.classes))


def fingerprint(params: Params, encoder: Path, splits: Path) -> str:
    h = hashlib.sha256(json.dumps(params.raw("finetune"), sort_keys=True).encode())
    h.update(encoder.read_bytes())
    for s in TRAIN_SUBSETS + ("val",):
        h.update((splits / f"{s}.parquet").read_bytes())
    for name in ("finetune.py", "classifier.py", "augment.py", "encoder.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


def run(params: Params, splits: str | Path, degraded: str | Path, encoder: str | Path,
        model_out: str | Path, metrics_out: str | Path, ckpt_dir: str | Path,
        live_dir: str | Path | None = None, stop_after_epochs: int | None = None,
        workers: int | None = None, progress: bool = True, device_kind: str = "auto") -> dict:
    cfg = FinetuneConfig.from_params(params)
    info = distributed.init(device_kind)
    dev = info.device
    setup_threads(max(1, (os.cpu_count() or 1) // info.world) if dev.type == "cpu" else None)
    splits, degraded, encoder = Path(splits), Path(degraded), Path(encoder)
    dinfo = manifest.read_info(degraded)
    train, val = read_training(splits)
    if dinfo["task"] == "grading" and cfg.loss not in classifier.LOSSES:
        raise ParamError("finetune.loss", f"must be one of {classifier.LOSSES}")
    if cfg.batch_size % info.world:
        raise ParamError("finetune.batch_size", f"= {cfg.batch_size} must be divisible by the "
                                                f"number of processes ({info.world})")
    torch.manual_seed(cfg.seed)
    model = classifier.from_encoder(encoder, dinfo["task"], dinfo["classes"], cfg.loss,
                                    cfg.image_size)
    mcfg = model.cfg
    if "RANK" in os.environ:
        model = distributed.sync_batchnorm(model, info)
    model = model.to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None) if info.active else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    criterion = classifier.loss_fn(mcfg)
    aug = augment_config(dinfo.get("modality", "fundus"), cfg.image_size)
    y_train = classifier.targets(train, mcfg)
    y_val = classifier.targets(val, mcfg)
    store = degraded / paths.IMAGES
    train_img = resized(store, train["image_id"].tolist(), cfg.image_size, workers,
                        "finetune: train images", progress and info.main)
    val_img = resized(store, val["image_id"].tolist(), cfg.image_size, workers,
                      "finetune: val images", progress and info.main)

    n = len(train)
    steps_per_epoch = -(-n // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    ckpt = Path(ckpt_dir) / CHECKPOINT
    fp = fingerprint(params, encoder, splits)
    start_epoch, best, history = 0, {"kappa": -2.0, "epoch": 0, "state": None}, []
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state.get("fingerprint") == fp:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start_epoch = int(state["epoch"])
            best = {"kappa": state["best_kappa"], "epoch": state["best_epoch"],
                    "state": state["best_state"]}
            history = json.loads(state["history"])
            if info.main:
                print(f"finetune: resuming from {ckpt} after epoch {start_epoch}")
        elif info.main:
            print(f"finetune: {ckpt} is from other params or data; starting afresh")
    live = open_live(live_dir, resume=start_epoch > 0) if info.main else None
    t0, seen = time.perf_counter(), 0
    for epoch in range(start_epoch, cfg.epochs):
        perm = rng_for(cfg.seed, "finetune", epoch).permutation(n)
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"finetune epoch {epoch + 1}/{cfg.epochs}",
                   unit="step", disable=not (progress and info.main))
        for s in bar:
            step = epoch * steps_per_epoch + s
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg.lr, warmup)
            pos = (s * cfg.batch_size + np.arange(cfg.batch_size)) % n  # wraps: equal shards
            idx = np.sort(perm[pos][info.rank::info.world])
            x = torch.from_numpy(np.ascontiguousarray(train_img.array[idx])).permute(0, 3, 1, 2)
            x = x.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else x
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            p = augment.select(augment.sample_params(cfg.batch_size, aug, gen),
                               np.arange(cfg.batch_size)[info.rank::info.world])
            x = augment.augment(x, p, aug)
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(y_train[idx]).to(dev)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                out = net(x)
            loss = criterion(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            seen += len(idx) * info.world
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        val_metrics = score(mcfg, predict(model, val_img.array, cfg.image_size, dev), y_val)
        history.append({"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 5),
                        **{k: round(v, 4) for k, v in val_metrics.items()}})
        if val_metrics["kappa"] > best["kappa"]:
            best = {"kappa": val_metrics["kappa"], "epoch": epoch + 1,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        if info.main:
            if live is not None:
                live.step = epoch
                live.log_metric("train/loss", float(np.mean(losses)))
                live.log_metric("val/kappa", val_metrics["kappa"])
                live.log_metric("val/accuracy", val_metrics["accuracy"])
                live.log_metric("train/lr", opt.param_groups[0]["lr"])
                live.next_step()
            print(f"finetune: epoch {epoch + 1}: loss {np.mean(losses):.4f}, "
                  f"val kappa {val_metrics['kappa']:.4f}, accuracy {val_metrics['accuracy']:.4f}")
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(ckpt) as tmp:
                torch.save({"fingerprint": fp, "epoch": epoch + 1, "model": model.state_dict(),
                            "optimizer": opt.state_dict(), "best_kappa": best["kappa"],
                            "best_epoch": best["epoch"], "best_state": best["state"],
                            "history": json.dumps(history)}, tmp)
        if stop_after_epochs is not None and epoch + 1 >= stop_after_epochs and epoch + 1 < cfg.epochs:
            train_img.close()
            val_img.close()
            distributed.shutdown(info)
            return {"interrupted_after_epoch": epoch + 1}
    train_img.close()
    val_img.close()
    summary = {"init": mcfg.init, "backbone": mcfg.backbone, "best_epoch": best["epoch"],
               "best_val_kappa": round(best["kappa"], 4), "epochs": cfg.epochs,
               "images_per_s": round(seen / max(time.perf_counter() - t0, 1e-9), 1),
               "history": history}
    if info.main:
        final = copy.deepcopy(model)
        if best["state"] is not None:
            final.load_state_dict(best["state"])
        classifier.save(_plain(final), model_out)
        write_text(metrics_out, json.dumps({k: v for k, v in summary.items() if k != "history"},
                                           indent=2, sort_keys=True) + "\n")
        if live is not None:
            live.end()
    distributed.shutdown(info)
    return summary


def _plain(model: classifier.Classifier) -> classifier.Classifier:
    """A classifier with plain BatchNorm2d (DistBatchNorm2d shares its state layout)."""
    out = classifier.Classifier(model.cfg)
    out.load_state_dict(model.state_dict())
    return out
