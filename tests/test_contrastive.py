"""CoMCL losses against naive per-anchor loops; SPL selection and its gradients."""
import math

import pytest
import torch

from comcl.pretraining import contrastive as C

HL, LL, HH, LH = C.HL, C.LL, C.HH, C.LH


def batch(per_pool, dim=8, seed=0):
    """Two views of per_pool patches from each pool: z, pool, instance."""
    g = torch.Generator().manual_seed(seed)
    pools = torch.arange(4).repeat_interleave(per_pool)
    inst = torch.arange(4 * per_pool)
    pool = torch.cat([pools, pools])
    instance = torch.cat([inst, inst])
    z = torch.nn.functional.normalize(torch.randn(len(pool), dim, generator=g, dtype=torch.float64), dim=1)
    return z, pool, instance


def naive_sets(pool, instance, level):
    """Anchor list with (positives, negatives) index lists, straight from DESIGN §4."""
    n = len(pool)
    lesion = lambda j: int(pool[j]) in (HL, LL)  # noqa: E731
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        if level == "l1" and lesion(i):
            out.append((i, [j for j in others if instance[j] == instance[i]],
                        [j for j in others if pool[j] == LH]))
        elif level == "l2" and pool[i] == HL:
            out.append((i, [j for j in others if pool[j] == HL], [j for j in others if pool[j] == HH]))
        elif level == "l3" and pool[i] == LL:
            out.append((i, [j for j in others if pool[j] == LL], [j for j in others if pool[j] == LH]))
        elif level == "single_level" and lesion(i):
            out.append((i, [j for j in others if lesion(j)], [j for j in others if not lesion(j)]))
        elif level == "simclr":
            pos = [j for j in others if instance[j] == instance[i]]
            out.append((i, pos, [j for j in others if j not in pos]))
    return out


def naive_loss(z, pool, instance, level, tau, keep=None):
    """Per-anchor loop of l_i; ``keep(i, negatives, sims)`` filters negatives (SPL)."""
    losses = []
    for i, pos, neg in naive_sets(pool, instance, level):
        s = {j: float(z[i] @ z[j]) / tau for j in pos + neg}
        if keep is not None:
            neg = keep(i, neg, s)
        if not pos or not neg:
            continue
        denom_neg = sum(math.exp(s[n]) for n in neg)
        terms = [math.log(math.exp(s[p]) / (math.exp(s[p]) + denom_neg)) for p in pos]
        losses.append(-sum(terms) / len(terms))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("level", ["l1", "l2", "l3", "single_level", "simclr"])
@pytest.mark.parametrize("per_pool,tau", [(2, 0.07), (3, 0.2), (5, 0.5), (1, 1.0)])
def test_level_loss_equals_naive_loop(level, per_pool, tau):
    z, pool, inst = batch(per_pool, seed=per_pool)
    got, stats = C.level_loss(z, pool, inst, level, tau, spl=None)
    want = naive_loss(z, pool, inst, level, tau)
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert stats["k"] == stats["negatives"]


def spl_keep(k, order):
    def keep(i, neg, s):
        ranked = sorted(neg, key=lambda j: (s[j] if order == "easy_first" else -s[j], j))
        return ranked[:k]
    return keep


@pytest.mark.parametrize("order", ["easy_first", "hard_first"])
@pytest.mark.parametrize("step,total,fmin", [(1, 10, 0.2), (5, 10, 0.2), (10, 10, 0.0), (3, 100, 0.5)])
@pytest.mark.parametrize("level", ["l1", "l2", "l3", "single_level"])
def test_spl_loss_equals_naive_loop_on_the_kept_negatives(order, step, total, fmin, level):
    z, pool, inst = batch(4, seed=step)
    _, _, neg_mask = C.level_masks(pool, inst, level)
    n_neg = int(neg_mask.sum(1)[0])
    k = C.spl_k(n_neg, step, total, fmin)
    assert k == min(n_neg, max(math.ceil(fmin * n_neg), math.ceil(n_neg * step / total)))
    spl = {"step": step, "total_steps": total, "min_fraction": fmin, "order": order}
    got, stats = C.level_loss(z, pool, inst, level, 0.1, spl)
    assert stats["k"] == k
    want = naive_loss(z, pool, inst, level, 0.1, keep=spl_keep(k, order))
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_spl_selects_exactly_k_and_the_right_ones():
    logits = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.7, 0.2],
                           [0.0, 0.8, 0.6, 0.4, 0.2, 1.0]])
    neg = torch.tensor([[True, True, True, True, True, False],
                        [False, True, True, True, True, True]])
    easy = C.spl_select(logits, neg, 2, "easy_first")
    hard = C.spl_select(logits, neg, 2, "hard_first")
    assert easy.sum(1).tolist() == [2, 2] and hard.sum(1).tolist() == [2, 2]
    assert easy[0].nonzero().flatten().tolist() == [1, 3]      # 0.1 and 0.3
    assert hard[0].nonzero().flatten().tolist() == [0, 4]      # 0.9 and 0.7
    assert easy[1].nonzero().flatten().tolist() == [3, 4]      # 0.4 and 0.2 (col 0 not a negative)
    assert hard[1].nonzero().flatten().tolist() == [1, 5]      # 0.8 and 1.0
    assert not (easy & ~neg).any() and not (hard & ~neg).any()
    per_row = C.spl_select(logits, neg, torch.tensor([1, 3]), "easy_first")
    assert per_row.sum(1).tolist() == [1, 3]


@pytest.mark.parametrize("order", ["easy_first", "hard_first"])
def test_gradient_is_exactly_zero_for_excluded_negatives(order):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 12, generator=g, requires_grad=True)
    pos = torch.zeros(5, 12, dtype=torch.bool)
    pos[:, 0] = True
    neg = torch.zeros(5, 12, dtype=torch.bool)
    neg[:, 2:] = True
    kept = C.spl_select(logits, neg, 4, order)
    loss = C.multi_positive_info_nce(logits, pos, kept)
    loss.backward()
    excluded = neg & ~kept
    assert excluded.sum() == 5 * 6
    assert (logits.grad[excluded] == 0).all()
    assert (logits.grad[kept] != 0).all()


def test_gradient_zero_for_an_embedding_excluded_everywhere():
    """A negative patch that no anchor keeps gets no gradient at all."""
    z, pool, inst = batch(3, seed=7)
    z = z.float().requires_grad_(True)
    spl = {"step": 1, "total_steps": 100, "min_fraction": 0.0, "order": "easy_first"}
    loss, stats = C.level_loss(z, pool, inst, "l2", 0.1, spl)
    loss.backward()
    assert stats["k"] == 1
    anchors, _, neg = C.level_masks(pool, inst, "l2")
    with torch.no_grad():
        logits = z[anchors] @ z.T / 0.1
    kept = C.spl_select(logits, neg, 1, "easy_first")
    never = neg.any(0) & ~kept.any(0)
    assert never.any()
    assert (z.grad[never] == 0).all()


def test_spl_disabled_is_plain_multi_positive_info_nce():
    z, pool, inst = batch(4, seed=11)
    full = {"step": 10, "total_steps": 10, "min_fraction": 0.2, "order": "easy_first"}
    a, _ = C.level_loss(z, pool, inst, "l1", 0.07, spl=None)
    b, _ = C.level_loss(z, pool, inst, "l1", 0.07, spl=full)   # k_T = N: all negatives
    assert float(a) == pytest.approx(float(b), rel=1e-12)
    assert float(a) == pytest.approx(naive_loss(z, pool, inst, "l1", 0.07), rel=1e-5)


def test_single_positive_reduces_to_eq1():
    """P(i) = {other view}: the usual InfoNCE of Eq. (1)."""
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 8, generator=g, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(4, 8, generator=g, dtype=torch.float64), dim=1)
    negs = torch.nn.functional.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ negs.T], 1) / 0.1
    pos = torch.zeros_like(logits, dtype=torch.bool)
    pos[:, 0] = True
    want = torch.nn.functional.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    assert float(C.multi_positive_info_nce(logits, pos, ~pos)) == pytest.approx(float(want), rel=1e-10)


def test_loss_is_stable_under_bf16_embeddings():
    z, pool, inst = batch(4, seed=5)
    a, _ = C.level_loss(z.float(), pool, inst, "l2", 0.07)
    b, _ = C.level_loss(z.to(torch.bfloat16), pool, inst, "l2", 0.07)
    assert torch.isfinite(b) and float(b) == pytest.approx(float(a), rel=0.05)


def test_empty_levels_give_zero_not_nan():
    z, pool, inst = batch(2)
    keep = pool != LL
    loss, stats = C.level_loss(z[keep], pool[keep], inst[keep], "l3", 0.1)
    assert float(loss) == 0.0 and stats["anchors"] == 0
