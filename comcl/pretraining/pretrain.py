"""The ``pretrain`` stage: CoMCL multi-level contrastive pretraining with SPL (DESIGN §4).

Variants by params alone (``pretrain.method``): ``comcl`` (levels L1-L3 switchable by
``pretrain.levels``, weighted by ``pretrain.level_weights``, SPL by ``spl.*``),
``single_level`` (CoMCL w/o multi-level), ``simclr`` and ``moco`` (basic CL), ``none``
(no pretraining: the downstream model starts from random weights). The loop knows no
method: it calls the objective (``comcl.pretraining.objectives``).

Adam (fused: one kernel for all parameters, 59 -> 7 ms a step for ResNet-18 on 2 CPU
cores) with linear warmup, then cosine decay or (``pretrain.lr_schedule: constant``, the
default) the base rate, ``pretrain.epochs`` x ``pretrain.steps_per_epoch`` steps (null: one
pass over the largest pool). ``pretrain.precision`` / ``channels_last``
(``comcl.common.placement``): bf16 + channels_last on CUDA and fp32 on the CPU by
default, either on both. Under ``torchrun`` it trains with DDP (NCCL or gloo), logging
and writing on rank 0. Checkpoints every ``pretrain.ckpt_every`` epochs to
``models/pretrain_ckpt/`` (a DVC ``persist`` output); a re-run with the same params,
patches and code resumes from it. Logged with dvclive: total and per-level loss, k_t,
learning rate, patches/s, mean positive and negative similarity, and the online
lesion-vs-healthy kNN probe.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from comcl.common import checkpoint, distributed
from comcl.common.atomic import write_text
from comcl.common.errors import DataError, ParamError
from comcl.common.text import plural
from comcl.common.live_log import open_live
from comcl.common.lr_schedule import lr_at
from comcl.common.params import Params
from comcl.common.placement import Placement
from comcl.detection import patch_store
from comcl.imaging import augment
from comcl.pretraining import objectives, pixel_scale, probe
from comcl.pretraining.heldout import HeldOutObjective
from comcl.pretraining.config import PretrainConfig
from comcl.pretraining.encoder import ContrastiveModel, build_backbone, save_encoder
from comcl.pretraining.pool_sampler import BatchMaker, OneAhead, PoolSampler
from comcl.pretraining.pretrain_log import log_probe, log_step
from comcl.pretraining.views import two_views

STAGE = "stages.pretrain"
HELD_OUT_PER_POOL = 64  # held-out patches per pool in the held-out objective's batch


def run(params: Params, store_dir: str | Path, dataset_info: str | Path, encoder_out: str | Path,
        metrics_out: str | Path, ckpt_dir: str | Path, live_dir: str | Path | None = None,
        stop_after: int | None = None, progress: bool = True, device_kind: str = "auto") -> dict:
    cfg = PretrainConfig.from_params(params)
    info = distributed.init(device_kind)
    place = Placement.from_params(params, "pretrain", info.device)
    place.setup_threads(info)
    if cfg.method == "none":
        return _no_pretraining(cfg, info, encoder_out, metrics_out, ckpt_dir, live_dir)
    if cfg.per_pool % info.world:
        raise ParamError("pretrain.per_pool", f"= {cfg.per_pool} must be divisible by the "
                                              f"number of processes ({info.world})")
    run_ = _Run(cfg, info, place, Path(store_dir), json.loads(Path(dataset_info).read_text()))
    fp = checkpoint.fingerprint({**asdict(cfg), "placement": repr(place)},
                                [Path(store_dir) / patch_store.INDEX], STAGE, str(info.world))
    ckpt = Path(ckpt_dir) / checkpoint.NAME
    start = run_.resume(ckpt, fp)
    live = open_live(live_dir, resume=start > 0) if info.main else None
    if start == 0:
        run_.probe(live, epoch=0, step=0)
    done = run_.train(start, ckpt, fp, live, stop_after, progress)
    if done < run_.total:
        distributed.shutdown(info)
        return {"interrupted_at": done, "loss": run_.history["loss"][-1]}
    summary = run_.summary()
    if info.main:
        save_encoder(run_.model.backbone, cfg.backbone, cfg.method, encoder_out,
                     {"input_size": cfg.input_size, "pixel_scale": run_.pixel_scale})
        write_text(metrics_out, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        if live is not None:
            live.end()
    distributed.shutdown(info)
    return summary


class _Run:
    """One pretraining run's state: data, model, objective, optimiser, history."""

    def __init__(self, cfg: PretrainConfig, info, place: Placement, store_dir: Path,
                 dinfo: dict):
        self.cfg, self.info, self.place = cfg, info, place
        self.arr, self.index = patch_store.load(store_dir)
        self.held_out = probe.probe_split(self.index, cfg.probe_fraction, cfg.seed)
        train_index = self.index.assign(
            pool=np.where(self.held_out, "held-out", self.index["pool"]))
        sampler = PoolSampler(train_index, cfg.per_pool, cfg.seed)
        self.counts = {k: len(v) for k, v in sampler.pools.items()}
        _check_pools(store_dir, self.index, self.counts, cfg.probe_fraction, info.main)
        self.batches = BatchMaker(self.arr, sampler, cfg.quality_view_p, cfg.seed,
                                  dinfo.get("modality", "fundus"),
                                  int(dinfo.get("image_size", 512)), info.rank, info.world,
                                  cfg.quality_view_severity,
                                  dinfo.get("degradation_severity"))
        self.steps_per_epoch = cfg.steps_per_epoch or sampler.steps_per_pass()
        self.total = cfg.epochs * self.steps_per_epoch
        self.warmup = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        torch.manual_seed(cfg.seed)
        self.model, net = place.model(ContrastiveModel(build_backbone(cfg.backbone, cfg.weights),
                                                         out_bn=cfg.head_out_bn),
                                      info)
        self.objective = objectives.build(cfg, self.model, net, info)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr,
                                    weight_decay=cfg.weight_decay, fused=True)
        self.aug = cfg.augment_config()
        self.pixel_scale = pixel_scale.patch_scale(cfg.input_size, self.arr.shape[1],
                                                   self.aug.scale)
        self.history: dict = {"loss": [], "probe": []}
        self.seen, self.t0 = 0, time.perf_counter()
        self.ahead = OneAhead(self.batches, self.total)
        held = HeldOutObjective.from_store(
            self.index, self.held_out, per_pool=max(cfg.per_pool, HELD_OUT_PER_POOL),
            template=self.batches, aug=self.aug, place=place, temperature=cfg.temperature)
        self.prober = probe.Probe(self.arr, self.index, self.held_out, cfg.input_size, place,
                                  cfg.seed, held)

    def step(self, step: int) -> tuple[float, dict]:
        for g in self.opt.param_groups:
            g["lr"] = lr_at(step, self.total, self.cfg.lr, self.warmup,
                            self.cfg.lr_schedule)
        batch = self.ahead(step)
        n_global = len(batch.positions) * self.info.world
        x = two_views(batch.views, batch.positions, n_global, self.aug, self.cfg.seed, step,
                      self.place)
        meta = objectives.StepMeta(batch.pool.to(self.place.device),
                                   batch.instance.to(self.place.device), step + 1, self.total)
        with self.place.autocast():
            loss, stats = self.objective(x, meta)
        self.opt.zero_grad(set_to_none=True)
        (loss * self.info.world).backward()
        self.opt.step()
        self.objective.after_step()
        self.seen += n_global
        self.history["loss"].append(float(loss.detach()))
        return self.history["loss"][-1], stats

    def train(self, start: int, ckpt: Path, fp: str, live, stop_after, progress) -> int:
        main = self.info.main
        bar = tqdm(range(start, self.total), desc="pretrain", unit="step", initial=start,
                   total=self.total, disable=not (progress and main))
        done = start
        for step in bar:
            loss, stats = self.step(step)
            done = step + 1
            if main and (step % self.cfg.log_every == 0 or done == self.total):
                rate = self.rate()
                bar.set_postfix(loss=f"{loss:.3f}", patches_s=f"{rate:.0f}")
                log_step(live, step, loss, stats, self.opt.param_groups[0]["lr"], rate)
            epoch, into_epoch = divmod(done, self.steps_per_epoch)
            last = done == self.total
            if into_epoch == 0 or last:
                if epoch % self.cfg.probe_every == 0 or last:
                    self.probe(live, epoch, step)
                if epoch % self.cfg.ckpt_every == 0 or last:
                    self.save(ckpt, fp, done)
            if stop_after is not None and stop_after <= done < self.total:
                self.save(ckpt, fp, done)
                break
        bar.close()
        return done

    def rate(self) -> float:
        return self.seen / max(time.perf_counter() - self.t0, 1e-9)

    def probe(self, live, epoch: int, step: int) -> None:
        if not (self.info.main and self.prober.active):
            return
        self.history["probe"].append({"epoch": epoch, "step": step + 1 if epoch else 0,
                                      **self.prober(self.model)})
        log_probe(live, self.history["probe"][-1], step)

    def save(self, path: Path, fp: str, step: int) -> None:
        if self.info.main:
            checkpoint.save(path, fp, {
                "step": step, "model": self.model.state_dict(),
                "objective": self.objective.state_dict(), "optimizer": self.opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "history": json.dumps(self.history)})

    def resume(self, path: Path, fp: str) -> int:
        state = checkpoint.load_matching(path, fp, "pretrain", verbose=self.info.main)
        if state is None:
            return 0
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.history = json.loads(state["history"])
        if self.info.main:
            print(f"pretrain: resuming from {path} at step {state['step']}")
        return int(state["step"])

    def summary(self) -> dict:
        cfg, hist = self.cfg, self.history
        out = {"method": cfg.method, "backbone": cfg.backbone, "steps": self.total,
               "final_loss": round(float(np.mean(hist["loss"][-self.steps_per_epoch:])), 5),
               "patches_per_s": round(self.rate(), 1), "pools": self.counts}
        if hist["probe"]:
            out["probe_first"], out["probe_last"] = hist["probe"][0], hist["probe"][-1]
        return out


def _check_pools(store_dir, index, counts: dict, fraction: float, verbose: bool) -> None:
    """Fail before training when no lesion patch is left to train on; warn of empty pools,
    saying when the probe hold-out (``pretrain.probe_fraction``) is what emptied them."""
    stored = index["pool"].value_counts().to_dict()
    held = {k: stored.get(k, 0) - counts[k] for k in counts}
    text = ", ".join(f"{k} {counts[k]} of {stored.get(k, 0)}" for k in counts)
    if not counts["HL"] + counts["LL"]:
        why = (f"; the probe hold-out (pretrain.probe_fraction = {fraction}) took "
               f"{plural(held['HL'] + held['LL'], 'lesion patch', 'lesion patches')}"
               if held["HL"] + held["LL"] else "")
        raise DataError(f"{store_dir}: no lesion patch to train on (training patches per "
                        f"pool: {text}){why}")
    for name, n in counts.items():
        if n == 0 and verbose:
            cause = (f" (the probe hold-out, pretrain.probe_fraction = {fraction}, took its "
                     f"{plural(held[name], 'patch', 'patches')})" if held[name] else "")
            print(f"pretrain: warning: pool {name} is empty{cause}; the terms that need it "
                  "are skipped")


def _no_pretraining(cfg, info, encoder_out, metrics_out, ckpt_dir, live_dir) -> dict:
    """``method: none``: a random-init marker. Every declared output must exist and nothing
    stale from a trained run may survive: an empty checkpoint folder, curves cleared."""
    if info.main:
        save_encoder(None, cfg.backbone, "none", encoder_out)
        write_text(metrics_out, json.dumps({"method": "none"}, indent=2) + "\n")
        Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
        (Path(ckpt_dir) / checkpoint.NAME).unlink(missing_ok=True)
        live = open_live(live_dir)
        if live is not None:
            live.summary["method"] = "none"
            live.end()
            (Path(live_dir) / "plots").mkdir(parents=True, exist_ok=True)
    distributed.shutdown(info)
    return {"method": "none"}
