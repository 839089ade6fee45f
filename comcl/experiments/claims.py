"""The paper's claims, each decided from a paired comparison of two cells of the grid.

A cell is one configuration run with several seeds (``paper_tables``: experiments
``<cell>-s<k>``). Each claim compares two cells on the same test images with
``compare.paired_bootstrap`` (test images and seeds resampled) and is **decided for** when
the 95% interval of the difference lies above 0, **decided against** when it lies below 0,
and **undecided** otherwise. "The gain is larger on low-quality images" compares CoMCL's
gain over the baseline on the low-quality and on the high-quality test images: the two
image sets are disjoint, so their bootstrap differences are drawn independently and
subtracted. "CoMCL loses less than the baseline at R% low quality" compares CoMCL's lead
over the baseline at ratio R with its lead at the native ratio: the test images are the
same images (ids and grades) degraded more or less, so one resample of the images serves
all four cells (seeds resampled per cell), and the interval is that of
(CoMCL - baseline at R%) - (CoMCL - baseline native).
"""
from __future__ import annotations

import numpy as np

from comcl.common.errors import DataError
from comcl.experiments.compare import (PARTS, Run, bootstrap_draw, config_metric,
                                      check_same_test_set, interval_notes, interval_over,
                                      marked_interval, paired_bootstrap)

METRIC = "kappa"


def at_ratio(cell: str, rname: str) -> str:
    """The name of a native Table 2/3 cell at ratio ``rname`` (``t2-no-spl`` -> ``t2-70-no-spl``,
    ``t1-native-comcl`` -> ``t1-70-comcl``)."""
    if rname == "native":
        return cell
    if cell.startswith("t1-native-"):
        return f"t1-{rname}-" + cell[len("t1-native-"):]
    table, rest = cell.split("-", 1)
    return f"{table}-{rname}-{rest}"


# (claim, cell that should be better, cell it should beat)
CLAIMS = [("CoMCL > baseline (no pretraining)", "t1-native-comcl", "t1-native-baseline"),
          ("CoMCL > basic CL (SimCLR)", "t1-native-comcl", "t1-native-basiccl"),
          ("CoMCL > CoMCL w/o multi-level", "t1-native-comcl", "t2-no-multilevel"),
          ("CoMCL > CoMCL w/o SPL", "t1-native-comcl", "t2-no-spl"),
          ("v2 (L1 + L2) > v1 (L2)", "t3-v2", "t3-v1"),
          ("v3 (L1 + L2 + L3) > v2 (L1 + L2)", "t1-native-comcl", "t3-v2"),
          # Table 1's other columns: every split degraded to 70% / 100% low quality
          ("CoMCL > baseline at 70% low quality", "t1-70-comcl", "t1-70-baseline"),
          ("CoMCL > basic CL at 70% low quality", "t1-70-comcl", "t1-70-basiccl"),
          ("CoMCL > baseline at 100% low quality", "t1-100-comcl", "t1-100-baseline"),
          ("CoMCL > basic CL at 100% low quality", "t1-100-comcl", "t1-100-basiccl")]
# Tables 2-3's claims at a degraded ratio (cells ``t2-70-no-spl`` ..): listed only where both
# cells ran (the paper reports the ablations at the native ratio only)
RATIO_CLAIMS = [(f"{claim} at {r}% low quality", at_ratio(a, r), at_ratio(b, r))
                for r in ("70", "100")
                for claim, a, b in CLAIMS if b.startswith(("t2-", "t3-"))]
ROBUSTNESS_CLAIMS = [(f"CoMCL loses less than the baseline at {r}% low quality (vs native)",
                      f"t1-{r}-comcl", f"t1-{r}-baseline") for r in ("70", "100")]
LQ_CLAIM = ("CoMCL's gain over the baseline is larger on low-quality images",
            "t1-native-comcl", "t1-native-baseline")
# the same at 70% low quality (listed where both cells ran): 30% of the test images stay
# high quality, so the two gains can be compared there too
LQ_CLAIM_70 = ("CoMCL's gain over the baseline is larger on low-quality images, at 70% "
               "low quality", "t1-70-comcl", "t1-70-baseline")


def verdict(lo: float, hi: float) -> str:
    return "decided for" if lo > 0 else "decided against" if hi < 0 else "undecided"


def _rows(runs: list[Run], part: str) -> np.ndarray:
    q = PARTS[part]
    quality = runs[0].quality
    return np.flatnonzero(quality == q) if q else np.arange(len(quality))


def _interval(deltas: np.ndarray) -> list[float]:
    return [round(float(x), 4) for x in np.percentile(deltas, [2.5, 97.5])]


def _gain(a: list[Run], b: list[Run], rows: np.ndarray) -> float:
    """Observed difference of the seed-mean metric, ``a`` minus ``b``, on ``rows``."""
    ones = np.ones(len(rows))
    return config_metric(a, rows, ones)[METRIC] - config_metric(b, rows, ones)[METRIC]


def decide(cells: dict[str, list[Run]], n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """One record per claim whose two cells both ran: Δ kappa overall (and per quality),
    its interval, the seeds of each side, and the verdict."""
    out = []
    ran = [c for c in RATIO_CLAIMS if cells.get(c[1]) and cells.get(c[2])]
    for claim, better, worse in CLAIMS + ran:
        if not (cells.get(better) and cells.get(worse)):
            out.append({"claim": claim, "better": better, "worse": worse, "verdict": "not run"})
            continue
        a, b = cells[better], cells[worse]
        check_same_test_set(a + b)
        rec = {"claim": claim, "better": better, "worse": worse,
               "seeds": [len(a), len(b)], "interval_over": interval_over(a, b), "parts": {}}
        for part in PARTS:
            rows = _rows(a, part)
            if not len(rows):
                continue
            boot = paired_bootstrap(a, b, rows, n_boot, np.random.default_rng(seed))[METRIC]
            rec["parts"][part] = {"delta": round(_gain(a, b, rows), 4), "ci95": _interval(boot)}
        lo, hi = rec["parts"]["overall"]["ci95"]
        rec["verdict"] = verdict(lo, hi)
        out.append(rec)
    out.append(_lq_claim(cells, LQ_CLAIM, n_boot, seed))
    if cells.get(LQ_CLAIM_70[1]) and cells.get(LQ_CLAIM_70[2]):
        out.append(_lq_claim(cells, LQ_CLAIM_70, n_boot, seed))
    out += [_robustness_claim(cells, claim, n_boot, seed) for claim in ROBUSTNESS_CLAIMS]
    return out


def _robustness_claim(cells: dict[str, list[Run]], claim: tuple, n_boot: int,
                      seed: int) -> dict:
    name, better, worse = claim
    keys = (better, worse, "t1-native-comcl", "t1-native-baseline")
    rec = {"claim": name, "better": better, "worse": worse}
    if not all(cells.get(k) for k in keys):
        return {**rec, "verdict": "not run"}
    sides = [cells[k] for k in keys]
    _check_same_images([r for runs in sides for r in runs])
    n = len(sides[0][0].image_id)
    rows, ones = np.arange(n), np.ones(n)

    def lead(w, picks):   # (CoMCL - baseline at the ratio) - (CoMCL - baseline, native)
        m = [config_metric(side, rows, w, pick)[METRIC] for side, pick in zip(sides, picks)]
        return m[0] - m[1] - m[2] + m[3]

    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for i in range(n_boot):
        boot[i] = lead(*bootstrap_draw(rng, n, sides))
    lo, hi = _interval(boot)
    delta = round(lead(ones, [None] * 4), 4)
    return {**rec, "seeds": [len(side) for side in sides], "interval_over": interval_over(*sides),
            "parts": {"ratio lead - native lead": {"delta": delta, "ci95": [lo, hi]}},
            "verdict": verdict(lo, hi)}


def _check_same_images(runs: list[Run]) -> None:
    """The same test images with the same grades (their quality may differ: the ratio)."""
    ref = runs[0]
    for run in runs[1:]:
        if not (np.array_equal(ref.image_id, run.image_id)
                and np.array_equal(ref.labels, run.labels)):
            raise DataError(f"{ref.name} and {run.name} were not evaluated on the same test "
                            "images (ids or grades differ); a ratio claim needs one test set "
                            "degraded at two ratios")


def _lq_claim(cells: dict[str, list[Run]], which: tuple, n_boot: int, seed: int) -> dict:
    claim, better, worse = which
    a, b = cells.get(better), cells.get(worse)
    rec = {"claim": claim, "better": better, "worse": worse}
    if not (a and b):
        return {**rec, "verdict": "not run"}
    check_same_test_set(a + b)
    boots, observed = {}, {}
    for i, part in enumerate(("low_quality", "high_quality")):
        rows = _rows(a, part)
        if not len(rows):
            return {**rec, "verdict": f"not decidable: no {part.replace('_', '-')} test image"}
        boots[part] = paired_bootstrap(a, b, rows, n_boot, np.random.default_rng(seed + i))[METRIC]
        observed[part] = _gain(a, b, rows)
    lo, hi = _interval(boots["low_quality"] - boots["high_quality"])
    delta = observed["low_quality"] - observed["high_quality"]
    return {**rec, "seeds": [len(a), len(b)], "interval_over": interval_over(a, b),
            "parts": {"low_quality - high_quality": {"delta": round(delta, 4), "ci95": [lo, hi]}},
            "verdict": verdict(lo, hi)}


def markdown(records: list[dict]) -> str:
    """The claims as a Markdown table; an interval that does not hold every cell's seeds
    carries a mark, explained under the table. A robustness claim lists the seeds of its
    four cells (ratio CoMCL, ratio baseline, native CoMCL, native baseline)."""
    lines = ["| claim | cells (seeds) | Δ kappa overall [95% CI] | high quality | low quality "
             "| verdict |", "| --- | --- | --- | --- | --- | --- |"]
    used = set()
    for r in records:
        parts = r.get("parts", {})

        def cell(part):
            p = parts.get(part)
            return (marked_interval(p["delta"], p["ci95"], r["interval_over"], used)
                    if p else "—")
        seeds = r.get("seeds", [])
        seeds = (f" ({seeds[0]} vs {seeds[1]}; native {seeds[2]} vs {seeds[3]})"
                 if len(seeds) == 4 else f" ({seeds[0]} vs {seeds[1]})" if seeds else "")
        overall = cell("overall") if "overall" in parts else cell(next(iter(parts), ""))
        lines.append(f"| {r['claim']} | {r['better']} vs {r['worse']}{seeds} | {overall} | "
                     f"{cell('high_quality')} | {cell('low_quality')} | **{r['verdict']}** |")
    notes = interval_notes(used)
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"
