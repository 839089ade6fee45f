"""Seed A/A of ``finetune.select``.

    python benchmarks/finetune_select_aa.py SEED EMA_DECAY OUT_DIR

One fine-tune per seed on models/encoder.pt keeps the best_val, last and EMA weights of the
same run and evaluates each on the test set (OUT_DIR/sSEED/<variant>/metrics/
predictions.parquet, for ``python -m comcl.experiments.compare``)."""
import sys, json, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comcl.common.params import Params
from comcl.diagnosis import finetune as ft, evaluate, classifier


def main():
    seed, decay = int(sys.argv[1]), float(sys.argv[2])
    root = Path(__file__).resolve().parents[1]
    out = Path(sys.argv[3]) / f"s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    raw = Params.load(root / "params.yaml").data
    raw = json.loads(json.dumps(raw))
    raw["finetune"].update(seed=seed, select="ema", ema_decay=decay)
    raw["evaluate"].update(gradcam_images=0, bootstrap=0)
    params = Params(raw)
    orig = ft._Finetune.kept_model

    def kept_and_others(self):
        for name, state in (("best_val", self.best["state"]), ("last", self.model.state_dict())):
            classifier.save(self.as_classifier(state), out / f"{name}.pt")
        return orig(self)

    ft._Finetune.kept_model = kept_and_others
    t = time.time()
    res = ft.run(params, root / "data/splits", root / "data/degraded", root / "models/encoder.pt",
                 out / "ema.pt", out / "finetune.json", out / "ckpt", None, workers=2, progress=False)
    print("finetune", seed, round(time.time() - t), res["best_epoch"], res["selected_val_kappa"], flush=True)
    for name in ("best_val", "last", "ema"):
        d = out / name / "metrics"
        d.mkdir(parents=True, exist_ok=True)
        r = evaluate.run(params, root / "data/splits", root / "data/degraded", out / f"{name}.pt",
                         d / "eval.json", None, None, workers=2, progress=False,
                         predictions_out=d / "predictions.parquet")
        print(seed, name, {k: round(v["kappa"], 4) for k, v in r.items()}, flush=True)


if __name__ == "__main__":   # the image cache starts worker processes
    main()
