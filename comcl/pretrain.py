"""The ``pretrain`` stage: CoMCL multi-level contrastive pretraining with SPL (DESIGN §4).

Variants by params alone (``pretrain.method``): ``comcl`` (levels L1-L3 switchable by
``pretrain.levels``, weighted by ``pretrain.level_weights``, SPL by ``spl.*``),
``single_level`` (CoMCL w/o multi-level), ``simclr`` and ``moco`` (basic CL), ``none``
(no pretraining: the downstream model starts from random weights).

Adam with linear warmup and cosine decay, ``pretrain.epochs`` x ``pretrain.steps_per_epoch``
steps (null: one pass over the largest pool). On CUDA: bf16 autocast, channels_last,
augmentation on the GPU, pinned-memory non-blocking copies; the CPU runs the same code.
Under ``torchrun`` it trains with DDP (NCCL or gloo), logging and writing on rank 0.
Checkpoints every ``pretrain.ckpt_every`` epochs to ``models/pretrain_ckpt/`` (a DVC
``persist`` output); a re-run with the same params and patches resumes from it.
Logged with dvclive: total and per-level loss, k_t, learning rate, patches/s, mean
positive and negative similarity, and the online lesion-vs-healthy kNN probe.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from comcl import augment, contrastive, distributed, patch_store, probe
from comcl.atomic import atomic_file, write_text
from comcl.live_log import open_live
from comcl.encoder import ContrastiveModel, build_backbone, save_encoder
from comcl.errors import DataError, ParamError
from comcl.params import Params
from comcl.pretrain_data import PoolSampler, global_meta, make_batch
from comcl.schedule import lr_at
from comcl.torch_setup import setup_threads

METHODS = ("comcl", "single_level", "simclr", "moco", "none")
CHECKPOINT = "last.pt"
PROBE_MEMORY = 1024  # training patches the kNN probe compares against


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




class MoCo:
    """MoCo v2 pieces: a momentum key encoder and a queue of past keys."""

    def __init__(self, model: torch.nn.Module, queue: int, momentum: float, dim: int, device):
        self.key_model = copy.deepcopy(model).requires_grad_(False)
        self.momentum = momentum
        self.queue = torch.nn.functional.normalize(
            torch.randn(queue, dim, generator=torch.Generator().manual_seed(0)), dim=1).to(device)
        self.ptr = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, q in zip(self.key_model.parameters(), model.parameters()):
            k.mul_(self.momentum).add_(q.detach(), alpha=1 - self.momentum)
        for k, q in zip(self.key_model.buffers(), model.buffers()):
            k.copy_(q)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        n = keys.shape[0]
        idx = (torch.arange(n, device=keys.device) + self.ptr) % self.queue.shape[0]
        self.queue[idx] = keys.float()
        self.ptr = int((self.ptr + n) % self.queue.shape[0])

    def loss(self, q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
        with torch.autocast(device_type=q.device.type, enabled=False):
            logits = torch.cat([(q.float() * k.float()).sum(1, keepdim=True),
                                q.float() @ self.queue.T], 1) / temperature
        pos = torch.zeros_like(logits, dtype=torch.bool)
        pos[:, 0] = True
        return contrastive.multi_positive_info_nce(logits, pos, ~pos)

    def state(self) -> dict:
        return {"key_model": self.key_model.state_dict(), "queue": self.queue.cpu(),
                "ptr": self.ptr}

    def load(self, state: dict) -> None:
        self.key_model.load_state_dict(state["key_model"])
        self.queue.copy_(state["queue"])
        self.ptr = int(state["ptr"])


CODE = ("pretrain.py", "contrastive.py", "augment.py", "pretrain_data.py", "encoder.py",
        "distributed.py", "degradation.py")


def fingerprint(cfg: PretrainConfig, store_dir: Path, world: int) -> str:
    """What a checkpoint must match to be resumed: config, patch index, code, world size."""
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    h.update((store_dir / patch_store.INDEX).read_bytes())
    for name in CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    h.update(str(world).encode())
    return h.hexdigest()[:16]


def run(params: Params, store_dir: str | Path, dataset_info: str | Path, encoder_out: str | Path,
        metrics_out: str | Path, ckpt_dir: str | Path, live_dir: str | Path | None = None,
        stop_after: int | None = None, progress: bool = True, device_kind: str = "auto") -> dict:
    cfg = PretrainConfig.from_params(params)
    info = distributed.init(device_kind)
    dev = info.device
    setup_threads(max(1, (os.cpu_count() or 1) // info.world) if dev.type == "cpu" else None)
    if cfg.method == "none":
        if info.main:
            save_encoder(None, cfg.backbone, "none", encoder_out)
            write_text(metrics_out, json.dumps({"method": "none"}, indent=2) + "\n")
            # Every declared output must exist, and nothing stale from a trained run may
            # survive: an empty checkpoint folder, and dvclive curves cleared to a summary.
            Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
            (Path(ckpt_dir) / CHECKPOINT).unlink(missing_ok=True)
            live = open_live(live_dir)
            if live is not None:
                live.summary["method"] = "none"
                live.end()
                (Path(live_dir) / "plots").mkdir(parents=True, exist_ok=True)
        distributed.shutdown(info)
        return {"method": "none"}
    if cfg.per_pool % info.world:
        raise ParamError("pretrain.per_pool", f"= {cfg.per_pool} must be divisible by the "
                                              f"number of processes ({info.world})")
    store_dir = Path(store_dir)
    arr, index = patch_store.load(store_dir)
    dinfo = json.loads(Path(dataset_info).read_text())
    held_out = probe.probe_split(index, cfg.probe_fraction, cfg.seed)
    train_index = index.assign(pool=np.where(held_out, "held-out", index["pool"]))
    sampler = PoolSampler(train_index, cfg.per_pool, cfg.seed)
    counts = {k: len(v) for k, v in sampler.pools.items()}
    if not counts["HL"] + counts["LL"]:
        raise DataError(f"{store_dir}: no lesion patch to train on (pools {counts})")
    for name, n in counts.items():
        if n == 0 and info.main:
            print(f"pretrain: warning: pool {name} is empty; the terms that need it are skipped")
    steps_per_epoch = cfg.steps_per_epoch or sampler.steps_per_pass()
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))

    torch.manual_seed(cfg.seed)
    model = ContrastiveModel(build_backbone(cfg.backbone, cfg.weights))
    if "RANK" in os.environ:
        model = distributed.sync_batchnorm(model, info)
    model = model.to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    moco = MoCo(model, cfg.moco_queue, cfg.moco_momentum, 128, dev) if cfg.method == "moco" else None
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None) if info.active else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    aug = augment.AugmentConfig(cfg.input_size)

    ckpt_dir = Path(ckpt_dir)
    fp = fingerprint(cfg, store_dir, info.world)
    start, history = _resume(ckpt_dir / CHECKPOINT, fp, model, opt, moco, info)
    live = open_live(live_dir, resume=start > 0) if info.main else None
    probe_x = probe_y = None
    mem_rows = np.flatnonzero(~held_out)
    if held_out.any() and len(mem_rows):
        mem_rows = np.sort(np.random.default_rng(cfg.seed).permutation(mem_rows)[:PROBE_MEMORY])
        probe_x, probe_y = arr[np.flatnonzero(held_out)], index["lesion"].to_numpy()[held_out]
    if start == 0 and info.main and probe_x is not None:
        history["probe"].append({"epoch": 0, **_probe(model, arr, index, mem_rows, probe_x,
                                                      probe_y, cfg, dev)})
        _log_probe(live, history["probe"][-1], 0)

    pin = dev.type == "cuda"
    bar = tqdm(range(start, total), desc="pretrain", unit="step", disable=not (progress and info.main),
               initial=start, total=total)
    seen, t0 = 0, time.perf_counter()
    last = {}
    try:
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg.lr, warmup)
            batch = make_batch(arr, sampler, step, info.rank, info.world, cfg.quality_view_p,
                               cfg.seed, dinfo.get("modality", "fundus"),
                               int(dinfo.get("image_size", 512)))
            views = batch.views.pin_memory() if pin else batch.views
            views = views.to(dev, non_blocking=True)
            n = len(batch.positions)
            n_global = n * info.world
            gen1 = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 2)
            gen2 = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 2 + 1)
            p1 = augment.select(augment.sample_params(n_global, aug, gen1), batch.positions)
            p2 = augment.select(augment.sample_params(n_global, aug, gen2), batch.positions)
            x = torch.cat([augment.augment(views[:n], p1, aug), augment.augment(views[n:], p2, aug)])
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16,
                                enabled=dev.type == "cuda"):
                z_local = net(x)
            stats: dict = {}
            if moco is not None:
                with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16,
                                                     enabled=dev.type == "cuda"):
                    k_local = moco.key_model(x[n:])
                q = z_local[:n]
                loss = moco.loss(q, k_local, cfg.temperature)
                stats["moco"] = (loss.detach(), {"k": moco.queue.shape[0]})
                total_loss = loss
            else:
                z = distributed.gather(z_local, info)
                pool, inst = global_meta(sampler, step, info.world)
                pool, inst = pool.to(dev), inst.to(dev)
                total_loss = z.sum() * 0.0
                spl = {"step": step + 1, "total_steps": total, "min_fraction": cfg.spl_min_fraction,
                       "order": cfg.spl_order} if cfg.uses_spl() else None
                for name, weight in cfg.loss_terms():
                    loss, st = contrastive.level_loss(z, pool, inst, name, cfg.temperature, spl)
                    stats[name] = (loss.detach(), st)
                    total_loss = total_loss + weight * loss
            opt.zero_grad(set_to_none=True)
            (total_loss * info.world).backward()
            opt.step()
            if moco is not None:
                moco.update(model)
                moco.enqueue(distributed.gather(k_local.float(), info))
            seen += n_global
            last = {"loss": float(total_loss.detach()), **{f"loss_{k}": float(v[0])
                                                             for k, v in stats.items()}}
            history["loss"].append(last["loss"])
            if info.main and (step % cfg.log_every == 0 or step == total - 1):
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{last['loss']:.3f}", patches_s=f"{rate:.0f}")
                _log_step(live, step, last, stats, opt.param_groups[0]["lr"], rate)
            done = step + 1
            if done % steps_per_epoch == 0 or done == total:
                epoch = done // steps_per_epoch
                if info.main and probe_x is not None and (epoch % cfg.probe_every == 0 or done == total):
                    history["probe"].append({"epoch": epoch, **_probe(model, arr, index, mem_rows,
                                                                      probe_x, probe_y, cfg, dev)})
                    _log_probe(live, history["probe"][-1], step)
                if epoch % cfg.ckpt_every == 0 or done == total:
                    _save_ckpt(ckpt_dir / CHECKPOINT, fp, done, model, opt, moco, history, info)
            if stop_after is not None and done >= stop_after and done < total:
                _save_ckpt(ckpt_dir / CHECKPOINT, fp, done, model, opt, moco, history, info)
                distributed.shutdown(info)
                return {"interrupted_at": done, "loss": last.get("loss")}
    except KeyboardInterrupt:
        print("pretrain: interrupted; re-run to resume from the last checkpoint")
        raise
    bar.close()
    rate = seen / max(time.perf_counter() - t0, 1e-9)
    summary = {"method": cfg.method, "backbone": cfg.backbone, "steps": total,
               "final_loss": round(float(np.mean(history["loss"][-steps_per_epoch:])), 5),
               "patches_per_s": round(rate, 1), "pools": counts}
    if history["probe"]:
        summary["probe_first"] = history["probe"][0]
        summary["probe_last"] = history["probe"][-1]
    if info.main:
        save_encoder(model.backbone, cfg.backbone, cfg.method, encoder_out,
                     {"input_size": cfg.input_size})
        write_text(metrics_out, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        if live is not None:
            live.end()
    distributed.shutdown(info)
    return summary


def _probe(model, arr, index, mem_rows, probe_x, probe_y, cfg, dev) -> dict:
    backbone = model.backbone
    mem = probe.features(backbone, arr[mem_rows], cfg.input_size, dev)
    test = probe.features(backbone, probe_x, cfg.input_size, dev)
    res = probe.knn_accuracy(mem, index["lesion"].to_numpy()[mem_rows], test, probe_y)
    return {k: round(v, 4) for k, v in res.items()}


def _resume(path: Path, fp: str, model, opt, moco, info) -> tuple[int, dict]:
    history = {"loss": [], "probe": []}
    if not path.exists():
        return 0, history
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != fp:
        if info.main:
            print(f"pretrain: {path} is from other params or patches; starting afresh")
        return 0, history
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if moco is not None and "moco" in state:
        moco.load(state["moco"])
    torch.set_rng_state(state["torch_rng"])
    history = json.loads(state["history"])
    if info.main:
        print(f"pretrain: resuming from {path} at step {state['step']}")
    return int(state["step"]), history


def _save_ckpt(path: Path, fp: str, step: int, model, opt, moco, history, info) -> None:
    if not info.main:
        return
    state = {"fingerprint": fp, "step": step, "model": model.state_dict(),
             "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
             "history": json.dumps(history)}
    if moco is not None:
        state["moco"] = moco.state()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def _log_step(live, step, last, stats, lr, rate) -> None:
    if live is None:
        return
    live.step = step
    live.log_metric("train/loss", last["loss"])
    for name, (loss, st) in stats.items():
        live.log_metric(f"train/loss_{name}", float(loss))
        if "k" in st:
            live.log_metric(f"spl/k_{name}", st["k"])
        if "negatives" in st:
            live.log_metric(f"spl/negatives_{name}", st["negatives"])
        for key in ("pos_sim", "neg_sim"):
            if key in st and not math.isnan(st[key]):
                live.log_metric(f"similarity/{key}_{name}", st[key])
    live.log_metric("train/lr", lr)
    live.log_metric("train/patches_per_s", rate)
    live.next_step()


def _log_probe(live, res: dict, step: int) -> None:
    if live is None:
        return
    live.step = step
    live.log_metric("probe/knn_accuracy", res["accuracy"])
    live.log_metric("probe/knn_balanced_accuracy", res["balanced_accuracy"])
