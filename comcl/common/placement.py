"""Where and how a model runs: device, threads, precision, memory format, DDP wrap.

One code path for every device. ``precision`` (``fp32`` | ``bf16``) and ``channels_last``
are settings, not device checks: torch runs bf16 autocast and channels_last tensors on
the CPU too, so the tests exercise what a GPU runs. ``auto`` resolves to bf16 +
channels_last on CUDA and fp32 + contiguous on the CPU. Only pinned host memory stays
tied to CUDA (there is no pinned memory without an accelerator).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from comcl.common.distributed import DistInfo, sync_batchnorm
from comcl.common.parallel import default_workers
from comcl.common.params import Params

PRECISIONS = ("auto", "fp32", "bf16")
CHANNELS_LAST = ("auto", True, False)


def setup_threads(n: int | None = None) -> None:
    """Use every core the process may run on (torch defaults to physical cores)."""
    torch.set_num_threads(n or default_workers())


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AMX or AVX512-BF16): there bf16
    autocast with channels_last trains ResNet-18 ~1.6x faster than fp32 (docs/pretraining.md)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Placement:
    device: torch.device
    precision: str = "fp32"        # resolved: fp32 | bf16
    channels_last: bool = False

    @classmethod
    def resolve(cls, device: torch.device, precision: str = "auto",
                channels_last: str | bool = "auto") -> "Placement":
        cuda = device.type == "cuda"
        if precision == "auto":
            precision = "bf16" if cuda else "fp32"
        if channels_last == "auto":
            channels_last = cuda
        return cls(device, precision, bool(channels_last))

    @classmethod
    def from_params(cls, p: Params, section: str, device: torch.device) -> "Placement":
        precision = p.choice(f"{section}.precision", PRECISIONS, default="auto")
        channels_last = p.choice(f"{section}.channels_last", CHANNELS_LAST, default="auto")
        place = cls.resolve(device, precision, channels_last)
        if place.precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
            print(f"{section}: bf16 on a CPU without native bf16 (AMX / AVX512-BF16) is "
                  f"emulated and slower than fp32; set {section}.precision: fp32 or auto")
        return place

    def setup_threads(self, info: DistInfo) -> None:
        if self.device.type == "cpu":
            setup_threads(max(1, default_workers() // info.world))

    def autocast(self):
        """bf16 autocast when ``precision`` is bf16 (CPU or CUDA), otherwise nothing."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A host batch on the device (pinned, non-blocking copy on CUDA), layout kept:
        for raw images that are augmented there before the model sees them."""
        if self.device.type == "cuda" and x.device.type == "cpu":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A host batch on the device in the model's memory format."""
        return self.memory_format(self.to_device(x))

    def memory_format_model(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def model(self, model: nn.Module, info: DistInfo) -> tuple[nn.Module, nn.Module]:
        """(model, net): the model on the device in its memory format (synchronised BN
        under torchrun) and what to call for training (DDP-wrapped when several ranks)."""
        if "RANK" in os.environ:
            model = sync_batchnorm(model, info)
        model = self.memory_format_model(model)
        if not info.active:
            return model, model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return model, nn.parallel.DistributedDataParallel(model, device_ids=ids)
