"""DVC stage `finetune`: the diagnosis model on whole images, from the pretrained encoder."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.diagnosis.finetune import run
from stages.options import (
    degraded_option,
    device_option,
    one_line_errors,
    params_option,
    splits_option,
    workers_option,
)


@click.command(help="""Fine-tune a ResNet classifier initialised from models/encoder.pt (random
weights when pretrain.method is none) on the training images (HL+LL+HH+LH) at
`finetune.image_size`: 5 DR grades with cross-entropy or `finetune.loss: mse`, or the
8-disease multi-label task with BCE. Keeps what `finetune.select` says: a moving average
of the weights (ema), the epoch with the best validation kappa (best_val), or the last.
Writes models/classifier.pt, metrics/finetune.json, dvclive curves and resumable
checkpoints (models/finetune_ckpt/). Runs under torchrun for DDP. Reads params: finetune.""")
@params_option
@splits_option
@degraded_option
@click.option("--encoder", default=f"{paths.MODELS}/encoder.pt", show_default=True)
@click.option("--model", default=f"{paths.MODELS}/classifier.pt", show_default=True)
@click.option("--metrics", default=f"{paths.METRICS}/finetune.json", show_default=True)
@click.option("--checkpoints", default=f"{paths.MODELS}/finetune_ckpt", show_default=True)
@click.option("--live-dir", default="dvclive/finetune", show_default=True,
              help="dvclive folder ('' to skip).")
@workers_option
@device_option
@click.option("--stop-after-epochs", type=int, default=None, hidden=True,
              help="Stop after this many epochs (simulates an interruption).")
@one_line_errors
def main(params_path, splits, degraded, encoder, model, metrics, checkpoints, live_dir, workers,
         device, stop_after_epochs):
    res = run(Params.load(params_path), splits, degraded, encoder, model, metrics, checkpoints,
              live_dir or None, stop_after_epochs, workers, device_kind=device)
    if "interrupted_after_epoch" in res:
        click.echo(f"finetune: stopped after epoch {res['interrupted_after_epoch']}")
    else:
        click.echo(f"finetune: kept {res['select']} weights (validation kappa "
                   f"{res.get('selected_val_kappa', res['best_val_kappa'])}; best epoch "
                   f"{res['best_epoch']} at {res['best_val_kappa']}; init: {res['init']}) -> {model}")


if __name__ == "__main__":
    main()
