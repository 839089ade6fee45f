"""CoMCL's contrastive losses (DESIGN §4): multi-positive InfoNCE, the three levels, SPL.

For an anchor i with positives P(i) and negatives N(i), similarities s = z_i . z_j / tau:

    l_i = -1/|P(i)| sum_{p in P(i)} log( e^{s_ip} / (e^{s_ip} + sum_{n in N(i)} e^{s_in}) )

computed in log space (logsumexp) on float32 logits, so that it is stable under bf16
autocast. Anchors with no positive or no negative do not count.

A batch holds two views of each patch; ``pool`` says which of P_HL, P_LL, P_HH, P_LH
(0..3) a view's patch came from and ``instance`` which patch it is (both views share it).

- L1, quality level: anchors = lesion views (HL, LL); P = the other view of the same
  patch; N = the LH views.
- L2, lesion level: anchors = HL views; P = the other HL views; N = the HH views.
- L3, low-quality lesion level: anchors = LL views; P = the other LL views; N = LH views.
- ``single_level`` (CoMCL w/o multi-level): anchors = lesion views; P = the other lesion
  views; N = all healthy views.
- ``simclr`` (basic CL, instance discrimination): anchors = all views; P = the other
  view of the same patch; N = every other view.

Self-paced hard-negative mining (SPL): at step t of T, each anchor keeps
k_t = max(ceil(f_min N), ceil(N t / (r T))) of its N negatives (r = ``spl.ramp_fraction``:
the curriculum ends at r T, while the learning rate is still useful; r = 1 is the paper's
lambda = N t / T), ranked by similarity with no
gradient through the ranking: the easiest (least similar) first by default, so harder
negatives join as training goes on; ``hard_first`` is the other reading. Excluded
negatives are masked with -inf, so their gradient is exactly zero.
"""
from __future__ import annotations

import math

import torch

HL, LL, HH, LH = 0, 1, 2, 3
LEVELS = ("l1", "l2", "l3")
SPL_ORDERS = ("easy_first", "hard_first")


def multi_positive_info_nce(logits: torch.Tensor, pos: torch.Tensor,
                            neg: torch.Tensor) -> torch.Tensor:
    """Mean over valid anchors of l_i. ``logits``: (A, M) float; ``pos``/``neg``: (A, M) bool."""
    valid = pos.any(1) & neg.any(1)
    if not bool(valid.any()):
        return logits.sum() * 0.0
    logits = logits[valid].to(torch.promote_types(logits.dtype, torch.float32))
    pos, neg = pos[valid], neg[valid]
    neg_lse = torch.logsumexp(logits.masked_fill(~neg, float("-inf")), dim=1, keepdim=True)
    log_prob = logits - torch.logaddexp(logits, neg_lse)
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(1) / pos.sum(1))
    return per_anchor.mean()


def spl_k(n_negatives: int, step: int, total_steps: int, min_fraction: float,
          ramp_fraction: float = 1.0) -> int:
    """k_t = max(ceil(f_min N), ceil(N t / (r T))), at most N (``step`` t counts from 1;
    r = ``ramp_fraction``: all negatives are in from step r T on)."""
    if n_negatives <= 0:
        return 0
    ramp = max(ramp_fraction * total_steps, 1.0)
    k = max(math.ceil(min_fraction * n_negatives), math.ceil(n_negatives * step / ramp))
    return min(k, n_negatives)


@torch.no_grad()
def spl_select(logits: torch.Tensor, neg: torch.Tensor, k: torch.Tensor | int,
               order: str = "easy_first") -> torch.Tensor:
    """The k negatives of each row to keep: lowest similarity first (``easy_first``) or
    highest (``hard_first``). ``k`` is an int or a per-row tensor; ties break by column."""
    if order not in SPL_ORDERS:
        raise ValueError(f"spl.order must be one of {SPL_ORDERS}, got {order!r}")
    score = logits.detach().to(torch.promote_types(logits.dtype, torch.float32))
    if order == "hard_first":
        score = -score
    score = score.masked_fill(~neg, float("inf"))  # non-negatives rank last
    rank = torch.empty_like(score, dtype=torch.long)
    order_idx = score.argsort(dim=1, stable=True)
    rank.scatter_(1, order_idx, torch.arange(score.shape[1], device=score.device)
                  .expand_as(order_idx).contiguous())
    k = torch.as_tensor(k, device=score.device).reshape(-1, 1)
    return (rank < k) & neg


def level_masks(pool: torch.Tensor, instance: torch.Tensor, level: str,
                anchor_rows: int | None = None):
    """(anchor rows, positive mask, negative mask) of a level over all views; with
    ``anchor_rows``, only the first ``anchor_rows`` views can be anchors (the others are a
    memory bank's: positives and negatives only)."""
    n = pool.numel()
    eye = torch.eye(n, dtype=torch.bool, device=pool.device)
    same_patch = (instance[:, None] == instance[None, :]) & ~eye
    lesion = (pool == HL) | (pool == LL)
    col = pool[None, :].expand(n, n)
    if level == "l1":
        anchors, pos, neg = lesion, same_patch, col == LH
    elif level == "l2":
        anchors, pos, neg = pool == HL, (col == HL) & ~eye, col == HH
    elif level == "l3":
        anchors, pos, neg = pool == LL, (col == LL) & ~eye, col == LH
    elif level == "single_level":
        anchors, pos, neg = lesion, lesion[None, :].expand(n, n) & ~eye, ~lesion[None, :].expand(n, n)
    elif level == "simclr":
        anchors, pos, neg = torch.ones(n, dtype=torch.bool, device=pool.device), same_patch, \
            ~same_patch & ~eye
    else:
        raise ValueError(f"unknown level {level!r}")
    if anchor_rows is not None:
        anchors = anchors & (torch.arange(n, device=pool.device) < anchor_rows)
    return anchors, pos[anchors], neg[anchors]


def level_loss(z: torch.Tensor, pool: torch.Tensor, instance: torch.Tensor, level: str,
               temperature: float, spl: dict | None = None,
               bank: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
    """One level's loss on L2-normalised embeddings ``z`` (V, D), and its statistics.

    ``spl``: None (all negatives), or {"step", "total_steps", "min_fraction", "order"} and
    optionally "ramp_fraction". ``bank``: (embeddings (M, D), pool ids (M,)) of earlier
    steps' views, detached (``comcl.pretraining.memory``): extra positives and negatives by
    pool for this batch's anchors, never anchors; an earlier view of an anchor's own patch
    counts by its pool, not as the anchor's other view; a pool id of -1 is an empty slot.
    """
    rows = None
    zf = z.float()
    if bank is not None and bank[1].numel():
        rows = z.shape[0]
        zf = torch.cat([zf, bank[0].float()])
        pool = torch.cat([pool, bank[1].to(pool.dtype)])
        instance = torch.cat([instance, -1 - torch.arange(bank[1].numel(), device=pool.device,
                                                          dtype=instance.dtype)])
    anchors, pos, neg = level_masks(pool, instance, level, rows)
    stats = {"anchors": int(anchors.sum()), "negatives": 0, "k": 0}
    if not bool(anchors.any()):
        return z.sum() * 0.0, stats
    with torch.autocast(device_type=z.device.type, enabled=False):
        logits = zf[anchors] @ zf.T / temperature
    n_neg = int(neg.sum(1).max())
    stats["negatives"] = n_neg
    if spl is not None and n_neg:
        k = spl_k(n_neg, spl["step"], spl["total_steps"], spl["min_fraction"],
                  spl.get("ramp_fraction", 1.0))
        neg = spl_select(logits, neg, k, spl["order"])
        stats["k"] = k
    else:
        stats["k"] = n_neg
    with torch.no_grad():
        sims = logits * temperature
        stats["pos_sim"] = float(sims[pos].mean()) if pos.any() else float("nan")
        stats["neg_sim"] = float(sims[neg].mean()) if neg.any() else float("nan")
    return multi_positive_info_nce(logits, pos, neg), stats
