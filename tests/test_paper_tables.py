"""The paper-table grid and its rendering from `dvc exp show --all-commits --json`."""
import json

from click.testing import CliRunner

from comcl.experiments import paper_tables


def test_grid_covers_the_three_tables_with_explicit_params():
    grid = paper_tables.grid()
    assert len(grid) == 13
    keys = set(paper_tables.BASE)
    assert all(set(sets) == keys for sets in grid.values())
    assert grid["t1-70-baseline"]["pretrain.method"] == "none"
    assert grid["t1-70-baseline"]["degrade.target_ratio"] == "0.7"
    assert grid["t1-100-basiccl"]["pretrain.method"] == "simclr"
    assert grid["t1-native-comcl"] == paper_tables.BASE
    assert grid["t2-no-spl"]["spl.enabled"] == "false"
    assert grid["t2-no-multilevel"]["pretrain.method"] == "single_level"
    v1 = grid["t3-v1"]
    assert (v1["pretrain.levels.l1"], v1["pretrain.levels.l2"], v1["pretrain.levels.l3"]) == \
        ("false", "true", "false")
    assert grid["t3-v2"]["pretrain.levels.l3"] == "false"
    # every table row points at an experiment of the grid
    assert {exp for _, exp, _ in paper_tables.TABLE2 + paper_tables.TABLE3} <= set(grid)


def test_queue_dry_run_prints_one_dvc_command_per_experiment():
    res = CliRunner().invoke(paper_tables.cli, ["queue", "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 13
    assert all(line.startswith("dvc exp run --queue -n ") for line in lines)
    assert "-S spl.enabled=false" in next(li for li in lines if " t2-no-spl " in li)


def _exp(name, stamp, kappa):
    part = {"kappa": kappa, "kappa_ci_low": kappa - 0.1, "kappa_ci_high": kappa + 0.1,
            "accuracy": 0.5}
    return {"revs": [{"rev": "abc", "name": name, "experiments": None, "error": None,
                      "data": {"timestamp": stamp, "metrics": {"metrics/eval.json": {"data": {
                          "overall": part, "low_quality": part}}}}}], "name": name}


def test_render_takes_the_newest_run_of_each_name(tmp_path):
    show = [{"rev": "workspace", "name": None, "data": {}, "experiments": None},
            {"rev": "c2", "name": "main", "data": {}, "experiments": [
                _exp("t1-native-comcl", "2026-11-24T03:00:00", 0.4),
                _exp("t2-no-spl", "2026-11-24T03:10:00", 0.3)]},
            {"rev": "c1", "name": None, "data": {}, "experiments": [
                _exp("t1-native-comcl", "2026-11-23T03:00:00", 0.2),
                {"revs": [{"rev": "q", "name": "t3-v1", "data": {"timestamp": None,
                                                                 "metrics": {}}}]},
                # a running experiment shows its base commit's metrics: left out
                {**_exp("t2-no-multilevel", "2026-11-24T03:20:00", 0.9),
                 "executor": {"state": "running"}}]}]
    results = paper_tables.collect(show)
    assert set(results) == {"t1-native-comcl", "t2-no-spl"}
    assert results["t1-native-comcl"]["overall"]["kappa"] == 0.4
    path = tmp_path / "show.json"
    path.write_text(json.dumps(show))
    res = CliRunner().invoke(paper_tables.cli, ["render", "--from-json", str(path)])
    assert res.exit_code == 0, res.output
    row = next(li for li in res.output.splitlines() if li.startswith("| CoMCL | native"))
    assert row == ("| CoMCL | native | 0.400 [0.300, 0.500] | 0.500 | 0.400 [0.300, 0.500] "
                   "| 0.884 | 0.872 |")
    assert "| CoMCL w/o SPL | 0.300 [0.200, 0.400] |" in res.output
    assert "| n/a | 0.868 | 0.860 |" in res.output   # no pretrain.json: no probe
    v1 = next(li for li in res.output.splitlines() if li.startswith("| CoMCL_v1"))
    assert "n/a" in v1   # queued, not yet run


def test_probe_column_reads_pretrain_metrics():
    show = [{"rev": "c", "name": "main", "data": {}, "experiments": [{"name": "t2-no-spl", "revs": [
        {"rev": "r", "name": "t2-no-spl", "data": {"timestamp": "t", "metrics": {
            "metrics/pretrain.json": {"data": {"probe_first": {"accuracy": 0.61},
                                               "probe_last": {"accuracy": 0.68}}}}}}]}]}]
    probes = paper_tables.collect(show, "metrics/pretrain.json")
    out = paper_tables.render({}, probes)
    assert "| CoMCL w/o SPL | n/a | n/a | n/a | 0.610 -> 0.680 | 0.868 | 0.860 |" in out


def test_seeds_are_a_grid_axis_and_render_gives_mean_and_sd_per_cell():
    grid = paper_tables.grid(seeds=3)
    assert len(grid) == 39
    assert grid["t2-no-spl-s2"]["spl.enabled"] == "false"
    assert grid["t2-no-spl-s2"]["pretrain.seed"] == grid["t2-no-spl-s2"]["finetune.seed"] == "2"
    assert paper_tables.cell_of("t2-no-spl-s2") == "t2-no-spl"
    assert paper_tables.cell_of("t3-v1") == "t3-v1"
    show = [{"rev": "c", "name": "main", "data": {}, "experiments": [
        _exp(f"t2-no-spl-s{k}", "2026-12-04T10:00:00", kappa)
        for k, kappa in enumerate((0.5, 0.6, 0.7))]}]
    text = paper_tables.render(paper_tables.collect(show))
    row = next(li for li in text.splitlines() if li.startswith("| CoMCL w/o SPL"))
    assert "0.600 ± 0.100 (3 seeds)" in row
