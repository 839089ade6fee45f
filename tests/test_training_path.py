"""One training path for every device: bf16 autocast + channels_last on the CPU, the MoCo
module's buffers, the objective interface, and checkpoint fingerprints from the closure."""
import json
import time

import numpy as np
import pytest
import torch
from conftest import write_params

from comcl.common import checkpoint, code_deps
from comcl.common.distributed import DistInfo
from comcl.common.params import Params
from comcl.common.placement import Placement
from comcl.diagnosis import finetune
from comcl.pretraining import contrastive, pretrain
from comcl.pretraining.encoder import ContrastiveModel, build_backbone
from comcl.pretraining.moco import MoCo
from comcl.pretraining.objectives import LevelObjective, StepMeta

GPU_PATH = {"precision": "bf16", "channels_last": True}


def test_auto_placement_is_fp32_on_cpu_and_bf16_channels_last_on_cuda():
    cpu = Placement.resolve(torch.device("cpu"))
    assert (cpu.precision, cpu.channels_last) == ("fp32", False)
    cuda = Placement.resolve(torch.device("cuda"))
    assert (cuda.precision, cuda.channels_last) == ("bf16", True)


def test_bf16_channels_last_placement_runs_a_conv_in_bf16_on_cpu():
    place = Placement.resolve(torch.device("cpu"), "bf16", True)
    conv = place.memory_format_model(torch.nn.Conv2d(3, 4, 3))
    x = place.inputs(torch.rand(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with place.autocast():
        y = conv(x)
    assert y.dtype == torch.bfloat16
    with Placement.resolve(torch.device("cpu")).autocast():
        assert conv(x).dtype == torch.float32


def test_bad_precision_names_the_key(tmp_path):
    params = Params({"pretrain": {"precision": "fp16"}})
    with pytest.raises(Exception, match=r"`pretrain.precision` must be one of auto, fp32, bf16"):
        Placement.from_params(params, "pretrain", torch.device("cpu"))


class _Recorder(ContrastiveModel):
    seen: list = []

    def forward(self, x):
        out = super().forward(x)
        _Recorder.seen.append((x.is_contiguous(memory_format=torch.channels_last),
                               self.backbone(x).dtype))
        return out


def test_pretrain_steps_run_the_gpu_path_on_cpu(tmp_path, tiny_patches, monkeypatch):
    monkeypatch.setattr(pretrain, "ContrastiveModel", _Recorder)
    _Recorder.seen = []
    params = Params.load(write_params(tmp_path / "params.yaml", {"pretrain": GPU_PATH}))
    t0 = time.perf_counter()
    res = pretrain.run(params, tiny_patches / "store", tiny_patches / "degraded" / "dataset.json",
                       tmp_path / "encoder.pt", tmp_path / "pretrain.json", tmp_path / "ckpt",
                       None, progress=False, device_kind="cpu")
    print(f"bf16 + channels_last pretrain: {time.perf_counter() - t0:.1f} s")
    assert np.isfinite(res["final_loss"])
    assert _Recorder.seen and all(cl and dt == torch.bfloat16 for cl, dt in _Recorder.seen)


def test_finetune_steps_run_the_gpu_path_on_cpu(tmp_path, tiny_models):
    params = Params.load(write_params(tmp_path / "params.yaml", {"finetune": GPU_PATH}))
    t0 = time.perf_counter()
    res = finetune.run(params, tiny_models / "splits", tiny_models / "degraded",
                       tiny_models / "encoder.pt", tmp_path / "clf.pt", tmp_path / "ft.json",
                       tmp_path / "ckpt", None, workers=1, progress=False, device_kind="cpu")
    print(f"bf16 + channels_last finetune: {time.perf_counter() - t0:.1f} s")
    assert all(np.isfinite(h["train_loss"]) for h in res["history"])
    saved = torch.load(tmp_path / "clf.pt", weights_only=True)
    assert json.loads(json.dumps(res["history"]))[0]["epoch"] == 1 and saved


def _batch(n=4, dim=3, size=16):
    pool = torch.tensor([0, 1, 2, 3] * (n // 4))
    inst = torch.arange(n)
    return (torch.rand(2 * n, dim, size, size),
            StepMeta(torch.cat([pool, pool]), torch.cat([inst, inst]), 1, 10))


def test_moco_queue_and_key_encoder_are_module_state():
    torch.manual_seed(0)
    model = ContrastiveModel(build_backbone("resnet18"))
    moco = MoCo(model, model, queue=8, momentum=0.5, temperature=0.2)
    state = moco.state_dict()
    assert {"queue", "queue_ptr"} <= set(state) and any(k.startswith("key_encoder.")
                                                          for k in state)
    assert not any(k.startswith(("query_model", "net")) for k in state)
    views, meta = _batch()
    before = moco.queue.clone()
    loss, stats = moco(views, meta)
    loss.backward()
    moco.after_step()
    assert int(moco.queue_ptr) == 4 and not torch.equal(before[:4], moco.queue[:4])
    assert torch.equal(before[4:], moco.queue[4:]) and stats["moco"][1]["k"] == 8
    again = MoCo(model, model, queue=8, momentum=0.5, temperature=0.2)
    again.load_state_dict(moco.state_dict())
    assert torch.equal(again.queue, moco.queue) and int(again.queue_ptr) == 4


def test_level_objective_sums_the_weighted_levels():
    torch.manual_seed(0)
    net = ContrastiveModel(build_backbone("resnet18")).eval()
    views, meta = _batch(8)
    obj = LevelObjective(net, [("l1", 1.0), ("l2", 0.5)], 0.1, None, DistInfo())
    loss, stats = obj(views, meta)
    z = net(views)
    want = sum(w * contrastive.level_loss(z, meta.pool, meta.instance, lv, 0.1)[0]
               for lv, w in (("l1", 1.0), ("l2", 0.5)))
    assert set(stats) == {"l1", "l2"} and torch.allclose(loss, want, atol=1e-5)


def test_checkpoint_fingerprint_covers_the_stage_closure(monkeypatch):
    closure = code_deps.closure("stages.pretrain")
    assert "comcl/common/lr_schedule.py" in closure and "comcl/pretraining/moco.py" in closure
    a = checkpoint.fingerprint({"x": 1}, [], "stages.pretrain")
    real = code_deps.closure
    monkeypatch.setattr(code_deps, "closure", lambda m: [c for c in real(m)
                                                         if not c.endswith("lr_schedule.py")])
    assert checkpoint.fingerprint({"x": 1}, [], "stages.pretrain") != a
