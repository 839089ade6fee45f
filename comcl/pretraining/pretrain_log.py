"""dvclive rows of the pretraining loop: losses per term, SPL k_t, similarities, probe."""
from __future__ import annotations

import math


def log_step(live, step: int, loss: float, stats: dict, lr: float, rate: float) -> None:
    if live is None:
        return
    live.step = step
    live.log_metric("train/loss", loss)
    for name, (term_loss, st) in stats.items():
        live.log_metric(f"train/loss_{name}", float(term_loss))
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


def log_probe(live, res: dict, step: int) -> None:
    """kNN probe accuracies and, per level, the held-out loss, its chance and their ratio."""
    if live is None:
        return
    live.step = step
    live.log_metric("probe/knn_accuracy", res["accuracy"])
    live.log_metric("probe/knn_balanced_accuracy", res["balanced_accuracy"])
    for key in ("lq_balanced_accuracy", "lesion_vs_lq_healthy"):
        if key in res:
            live.log_metric(f"probe/knn_{key}", res[key])
    for level, vals in res.get("heldout", {}).items():
        for key in ("loss", "chance", "ratio"):
            live.log_metric(f"heldout/{key}_{level}", vals[key])
