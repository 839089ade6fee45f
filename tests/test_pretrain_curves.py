"""The pretraining-curves figure reads dvclive folders and probes.json; a run it cannot read
is an error naming it, not a missing line."""
import json

import pytest
from click.testing import CliRunner

from comcl.experiments import pretrain_curves


def _probes(folder, ratios):
    folder.mkdir(parents=True)
    rows = [{"step": 100 * i, "balanced_accuracy": 0.5 + 0.1 * i, "lq_balanced_accuracy": 0.5,
             "lesion_vs_lq_healthy": 0.5, "heldout": {"l1": {"ratio": r}}}
            for i, r in enumerate(ratios)]
    (folder / "probes.json").write_text(json.dumps(rows))
    return folder


def test_reads_probes_json_in_a_folder_and_names_a_run_without_curves(tmp_path):
    run = _probes(tmp_path / "variant", [1.0, 0.6, 0.4])
    steps, ratio = pretrain_curves.curve(pretrain_curves.source(run), "heldout/ratio_l1")
    assert list(steps) == [0, 100, 200] and list(ratio) == [1.0, 0.6, 0.4]
    live = tmp_path / "live" / "plots" / "metrics" / "probe"
    live.mkdir(parents=True)
    (live / "knn_balanced_accuracy.tsv").write_text("step\tknn\n0\t0.55\n100\t0.8\n")
    out = tmp_path / "fig.png"
    res = CliRunner().invoke(pretrain_curves.main, ["--run", f"CoMCL={run}", "--run",
                                                    f"live={tmp_path / 'live'}", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 10_000
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(pretrain_curves.main, ["--run", f"CoMCL={run}", "--run",
                                                    f"SimCLR={empty}", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 1
    assert f"--run SimCLR={empty}: no curve there" in res.output
    assert not (tmp_path / "x.png").exists()


def test_source_keeps_a_dvclive_folder(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "probes.json").write_text("[]")
    assert pretrain_curves.source(tmp_path) == tmp_path
    with pytest.raises(FileNotFoundError):
        pretrain_curves.read_probes(tmp_path / "nope.json", "heldout/ratio_l1")
