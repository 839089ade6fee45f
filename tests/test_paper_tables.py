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


def test_queue_table2_cells_with_a_preset_sets_the_profile_first(tmp_path):
    preset = tmp_path / "bench.yaml"
    preset.write_text("synthetic: {n_test: 1500}\nspl: {enabled: false}\n")
    res = CliRunner().invoke(paper_tables.cli, ["queue", "--dry-run", "--seeds", "3",
                                                "--cells", "table2", "--preset", str(preset)])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 15                       # 5 cells x 3 seeds
    assert {li.split()[5] for li in lines} == {f"{c}-s{k}" for c in paper_tables.TABLE2_CELLS
                                               for k in range(3)}
    comcl = next(li for li in lines if " t1-native-comcl-s2 " in li).split()
    assert comcl.index("synthetic.n_test=1500") < comcl.index("finetune.seed=2")
    # every seed key, the random-init encoder of the baseline's linear probe included
    assert {"pretrain.seed=2", "finetune.seed=2", "linear_probe.seed=2"} <= set(comcl)
    # the cell's own value comes after the profile's, so it wins in dvc exp run
    assert comcl.index("spl.enabled=false") < comcl.index("spl.enabled=true")
    low = CliRunner().invoke(paper_tables.cli, ["queue", "--dry-run", "--cells",
                                                "t1-native-comcl", "--prefix", "ll10-",
                                                "-S", "finetune.label_fraction=0.1"])
    assert low.exit_code == 0 and low.output.split()[5] == "ll10-t1-native-comcl"
    assert "-S finetune.label_fraction=0.1" in low.output
    bad = CliRunner().invoke(paper_tables.cli, ["queue", "--dry-run", "--cells", "t9-nope"])
    assert bad.exit_code == 2 and "unknown cell t9-nope" in bad.output


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
    assert "| n/a | n/a | 0.868 | 0.860 |" in res.output   # no pretrain.json: no probe
    v1 = next(li for li in res.output.splitlines() if li.startswith("| CoMCL_v1"))
    assert "n/a" in v1   # queued, not yet run
    # a prefixed family is read as the cells it names, and only it
    show[1]["experiments"].append(_exp("ll10-t2-no-spl", "2026-11-24T04:00:00", 0.1))
    path.write_text(json.dumps(show))
    res = CliRunner().invoke(paper_tables.cli, ["render", "--from-json", str(path),
                                                "--prefix", "ll10-"])
    assert res.exit_code == 0, res.output
    assert "| CoMCL w/o SPL | 0.100 [0.000, 0.200] |" in res.output
    assert "| CoMCL | native | n/a |" in res.output


def test_probe_column_reads_pretrain_metrics():
    show = [{"rev": "c", "name": "main", "data": {}, "experiments": [{"name": "t2-no-spl", "revs": [
        {"rev": "r", "name": "t2-no-spl", "data": {"timestamp": "t", "metrics": {
            "metrics/pretrain.json": {"data": {"probe_first": {"accuracy": 0.61},
                                               "probe_last": {"accuracy": 0.68}}}}}}]}]}]
    probes = paper_tables.collect(show, "metrics/pretrain.json")
    out = paper_tables.render({}, probes)
    assert "| CoMCL w/o SPL | n/a | n/a | n/a | 0.610 -> 0.680 | n/a | 0.868 | 0.860 |" in out
    # several seeds: the mean; held-out loss / chance per enabled level
    last = lambda acc, l2: {"accuracy": acc, "heldout": {  # noqa: E731
        "l1": {"ratio": 0.5}, "l2": {"ratio": l2}}}
    seeds = {"t3-v2-s0": {"probe_first": {"accuracy": 0.6}, "probe_last": last(0.7, 0.9)},
             "t3-v2-s1": {"probe_first": {"accuracy": 0.6}, "probe_last": last(0.8, 1.1)}}
    out = paper_tables.render({}, seeds)
    assert "| CoMCL_v2 (L1 + L2) | n/a | n/a | n/a | 0.600 -> 0.750 | 0.50 / 1.00 / — |" in out
    part = {"kappa": 0.4}
    table = paper_tables.runs_table({"t3-v2-s1": {"overall": part, "high_quality": part}},
                                    seeds, {"t3-v2-s0": {"overall": {"kappa": 0.2}}})
    assert "| t3-v2-s0 | n/a | n/a | n/a | 0.200 | 0.700 | 0.50 / 0.90 / — |" in table
    assert "| t3-v2-s1 | 0.400 | 0.400 | n/a | n/a | 0.800 | 0.50 / 1.10 / — |" in table


def test_linear_probe_table_reads_linear_probe_metrics_per_quality():
    part = {"kappa": 0.5, "accuracy": 0.6}
    lp = {f"t1-native-comcl-s{k}": {"overall": {"kappa": 0.4 + 0.1 * k, "accuracy": 0.6},
                                     "high_quality": part, "low_quality": part}
          for k in range(3)}
    out = paper_tables.render({}, {}, lp)
    assert "## Table 2, linear probe" in out
    assert ("| CoMCL | 0.500 ± 0.100 (3 seeds) | 0.600 ± 0.000 (3 seeds) | "
            "0.500 ± 0.000 (3 seeds) | 0.500 ± 0.000 (3 seeds) |") in out
    assert "| Baseline (ResNet) | n/a | n/a | n/a | n/a |" in out
    assert "linear probe" not in paper_tables.render({}, {}, {})   # no run: no section


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


def _commit_experiment(repo, name, kappa, y, pred, day):
    """A commit holding what an experiment's run writes, and a DVC-like ref to it."""
    import subprocess

    import numpy as np
    import pandas as pd

    from comcl.diagnosis import predictions
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True,  # noqa: E731
                                    capture_output=True, text=True).stdout.strip()
    part = {"kappa": kappa, "accuracy": 0.5}
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics" / "eval.json").write_text(json.dumps(
        {"overall": part, "high_quality": part, "low_quality": part}))
    (repo / "params.yaml").write_text(f"name: {name}\n")
    test = pd.DataFrame({"image_id": [f"i{j}" for j in range(len(y))],
                         "quality": ["high", "low"] * (len(y) // 2)})
    predictions.write(predictions.frame("grading", list("01234"), test, np.array(y),
                                        np.array(pred), np.eye(5)[pred]),
                      "grading", list("01234"), repo / "metrics" / "predictions.parquet")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", name,
        "--date", f"2026-12-0{day}T10:00:00")
    env_rev = git("rev-parse", "HEAD")
    git("update-ref", f"refs/exps/ab/cdef/{name}", env_rev)
    return env_rev


def test_export_keeps_each_experiments_results_and_render_reads_the_folder(tmp_path,
                                                                          monkeypatch):
    import subprocess

    import numpy as np
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    y = np.arange(20) % 5
    _commit_experiment(repo, "t1-native-baseline-s0", 0.3, y, (y + 1) % 5, 1)
    _commit_experiment(repo, "t1-native-comcl-s0", 0.8, y, y, 2)
    subprocess.run(["git", "update-ref", "refs/exps/celery/stash", "HEAD"], cwd=repo,
                   check=True)   # the queue's own ref: not an experiment
    monkeypatch.chdir(repo)
    dest = tmp_path / "grid"
    res = CliRunner().invoke(paper_tables.cli, ["export", str(dest)])
    assert res.exit_code == 0, res.output
    assert "exported 2 experiments" in res.output
    assert sorted(p.name for p in dest.iterdir()) == ["t1-native-baseline-s0",
                                                       "t1-native-comcl-s0"]
    comcl = dest / "t1-native-comcl-s0"
    assert json.loads((comcl / "metrics" / "eval.json").read_text())["overall"]["kappa"] == 0.8
    assert (comcl / "metrics" / "predictions.parquet").is_file()
    assert (comcl / "params.yaml").read_text() == "name: t1-native-comcl-s0\n"
    assert not (comcl / "metrics" / "pretrain.json").exists()   # the run had none
    res = CliRunner().invoke(paper_tables.cli, ["render", "--from-dir", str(dest), "--claims",
                                                "--runs", "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    assert "| t1-native-comcl-s0 | 0.800 | 0.800 | 0.800 | n/a | n/a | n/a |" in res.output
    assert "| CoMCL | native | 0.800 |" in res.output
    assert "| Baseline (ResNet) | native | 0.300 |" in res.output
    claim = next(li for li in res.output.splitlines()
                 if "t1-native-comcl vs t1-native-baseline" in li)
    assert claim.endswith("| **decided for** |"), claim
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    monkeypatch.chdir(empty)
    res = CliRunner().invoke(paper_tables.cli, ["export", str(tmp_path / "none")])
    assert res.exit_code == 1 and "no DVC experiment to export" in res.output


def test_ablations_at_a_ratio_queue_and_render_as_their_own_tables():
    cells = paper_tables.ratio_ablation_cells()
    assert set(cells) == {f"t{t}-{r}-{c}" for r in ("70", "100") for t, c in
                          (("2", "no-spl"), ("2", "no-multilevel"), ("3", "v1"), ("3", "v2"))}
    assert cells["t2-70-no-spl"] == {**paper_tables.cells()["t2-no-spl"],
                                     "degrade.target_ratio": "0.7"}
    assert len(paper_tables.grid()) == 13          # the paper's cells stay the default grid
    res = CliRunner().invoke(paper_tables.cli, ["queue", "--dry-run", "--seeds", "2",
                                                "--cells", "table2-70"])
    assert res.exit_code == 0, res.output
    names = {li.split()[5] for li in res.output.strip().splitlines()}
    assert names == {f"{c}-s{k}" for c in ("t1-70-baseline", "t1-70-basiccl", "t1-70-comcl",
                                          "t2-70-no-spl", "t2-70-no-multilevel")
                     for k in range(2)}
    line = next(li for li in res.output.splitlines() if " t2-70-no-spl-s1 " in li)
    assert "-S degrade.target_ratio=0.7" in line and "-S spl.enabled=false" in line
    part = {"kappa": 0.5, "accuracy": 0.6}
    m = {"overall": part, "low_quality": part}
    out = paper_tables.render({"t1-70-comcl-s0": m, "t2-70-no-spl-s0": m})
    assert "## Table 2: ablations (70% low quality; paper: native)" in out
    assert "## Table 3" in out and "100% low quality" not in out
    table = out.split("## Table 2: ablations (70%")[1]
    assert "| CoMCL w/o SPL | 0.500" in table and "| CoMCL | 0.500" in table
    assert "ablations (70%" not in paper_tables.render({"t1-70-comcl-s0": m})


def test_render_reads_a_cell_whole_from_the_first_prefix_that_has_it():
    found = {"pp-t1-70-comcl-s0": 1, "pp-t1-70-comcl-s1": 2, "e-t1-70-comcl-s0": 3,
             "e-t1-70-comcl-s2": 4, "e-t1-70-baseline-s0": 5, "other-t1-70-baseline-s0": 6}
    names = paper_tables.family_names(found, ("pp-", "e-"))
    assert names == {"t1-70-comcl-s0": "pp-t1-70-comcl-s0", "t1-70-comcl-s1": "pp-t1-70-comcl-s1",
                     "t1-70-baseline-s0": "e-t1-70-baseline-s0"}
    assert paper_tables.family_names(found, ("",))["e-t1-70-comcl-s2"] == "e-t1-70-comcl-s2"
