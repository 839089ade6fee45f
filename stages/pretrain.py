"""DVC stage `pretrain`: CoMCL multi-level contrastive pretraining with SPL."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.pretraining.pretrain import run
from stages.options import device_option, one_line_errors, params_option


@click.command(help="""Pretrain the encoder on the patch store with `pretrain.method`: comcl
(levels L1 quality, L2 lesion, L3 low-quality lesion, self-paced hard-negative mining
`spl.*`), single_level, simclr, moco, or none. Writes models/encoder.pt,
metrics/pretrain.json, dvclive curves (loss per level, k_t, lr, patches/s, similarities,
kNN probe) and resumable checkpoints in models/pretrain_ckpt/. Runs under torchrun for
DDP (`torchrun --nproc_per_node N -m stages.pretrain`). Reads params: pretrain, spl.""")
@params_option
@click.option("--store", default=f"{paths.PATCHES}/store", show_default=True,
              type=click.Path(file_okay=False), help="Output of `build_patches`.")
@click.option("--dataset-info", default=f"{paths.DEGRADED}/{paths.DATASET_INFO}",
              show_default=True, type=click.Path(dir_okay=False))
@click.option("--encoder", default=f"{paths.MODELS}/encoder.pt", show_default=True)
@click.option("--metrics", default=f"{paths.METRICS}/pretrain.json", show_default=True)
@click.option("--checkpoints", default=f"{paths.MODELS}/pretrain_ckpt", show_default=True)
@click.option("--live-dir", default="dvclive/pretrain", show_default=True,
              help="dvclive folder ('' to skip).")
@device_option
@click.option("--stop-after-steps", type=int, default=None, hidden=True,
              help="Stop (with a checkpoint) after this many steps: simulates an interruption.")
@one_line_errors
def main(params_path, store, dataset_info, encoder, metrics, checkpoints, live_dir, device,
         stop_after_steps):
    res = run(Params.load(params_path), store, dataset_info, encoder, metrics, checkpoints,
              live_dir or None, stop_after_steps, device_kind=device)
    if "interrupted_at" in res:
        click.echo(f"pretrain: stopped after step {res['interrupted_at']} (checkpoint saved)")
    elif res.get("method") == "none":
        click.echo("pretrain: method none: the classifier will start from random weights")
    elif "final_loss" in res:
        probe = res.get("probe_last", {})
        click.echo(f"pretrain: final loss {res['final_loss']}, {res['patches_per_s']} patches/s, "
                   f"probe accuracy {probe.get('accuracy')} (chance {probe.get('chance')}) "
                   f"-> {encoder}")


if __name__ == "__main__":
    main()
