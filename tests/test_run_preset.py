"""scripts/run_preset.py: a preset becomes `dvc exp run -S` overrides, the user's last."""
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import run_preset  # noqa: E402

from comcl.common.params import Params  # noqa: E402
from comcl.experiments import presets  # noqa: E402


def test_preset_flattens_to_overrides_with_lists_nulls_and_the_users_last(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("data: {source: eyeq, eyeq: {test_csv: null}}\n"
                      "detector: {anchor_sizes: [4, 6], anchors_per_level: true, lr: 5.0e-4}\n")
    cmd = run_preset.command(preset, ("data.source=synthetic",), "evaluate", "x", False)
    assert cmd[:5] == ["dvc", "exp", "run", "-n", "x"] and cmd[-1] == "evaluate"
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-S"]
    assert sets == ["data.source=eyeq", "data.eyeq.test_csv=null",
                    "detector.anchor_sizes=[4,6]", "detector.anchors_per_level=true",
                    "detector.lr=0.0005", "data.source=synthetic"]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "presets").glob("*.yaml")))
def test_every_preset_names_only_keys_params_yaml_has(name):
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    preset = yaml.safe_load((ROOT / "presets" / name).read_text())
    for key, _ in presets.flatten(preset):
        node = base
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{name}: {key} not in params.yaml"
            node = node[part]
    assert Params(base)  # the base itself loads
