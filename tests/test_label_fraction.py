"""finetune.label_fraction: a seeded subset that keeps the class and quality balance."""
import pandas as pd
import pytest

from comcl.common.errors import ParamError
from comcl.common.params import Params
from comcl.diagnosis.finetune import FinetuneConfig
from comcl.diagnosis.label_fraction import label_subset


def _train():
    rows = []
    for grade, n in enumerate([100, 40, 60, 30, 20]):
        for k in range(n):
            rows.append({"image_id": f"g{grade}_{k:03d}", "label": grade,
                         "quality": "low" if k % 4 == 0 else "high"})
    return pd.DataFrame(rows)


def test_label_fraction_keeps_class_and_quality_balance_and_is_seeded():
    train = _train()
    sub = label_subset(train, 0.1, seed=0)
    per = sub.groupby(["label", "quality"]).size()
    full = train.groupby(["label", "quality"]).size()
    expected = (full * 0.1).apply(lambda v: max(1, -(-v // 1)))  # ceil, at least 1
    assert per.to_dict() == expected.astype(int).to_dict()
    assert sub.index.is_monotonic_increasing
    assert sub["image_id"].tolist() == label_subset(train, 0.1, seed=0)["image_id"].tolist()
    assert sub["image_id"].tolist() != label_subset(train, 0.1, seed=1)["image_id"].tolist()
    assert label_subset(train, 1.0, seed=0) is train


def test_label_fraction_out_of_range_names_the_key():
    base = {"image_size": 64, "epochs": 1, "batch_size": 2, "lr": 1e-3, "weight_decay": 0.0,
            "warmup_epochs": 0, "loss": "ce", "seed": 0, "scale_mismatch": "warn"}
    assert FinetuneConfig.from_params(Params({"finetune": base})).label_fraction == 1.0
    with pytest.raises(ParamError, match="finetune.label_fraction"):
        FinetuneConfig.from_params(Params({"finetune": {**base, "label_fraction": 0}}))
