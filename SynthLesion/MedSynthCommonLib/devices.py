"""Where and how the networks run: device, mixed precision, memory format.

One ``Accelerator`` is chosen per run and used by training and inference alike:

- ``device``: "auto" (CUDA when torch sees a GPU, else CPU), "cpu", "cuda", "cuda:N", "mps";
- ``precision``: "auto" (bf16 on a GPU that has it, else fp16 on a GPU; fp32 on CPU/MPS),
  "fp32", "bf16" or "fp16".  Mixed precision = ``torch.autocast`` on the forward passes and
  losses; fp16 adds a ``torch.amp.GradScaler`` per optimiser (bf16 has fp32's range and needs
  none).  Weights and optimiser moments stay fp32.
- ``channels_last``: None = on for CUDA (tensor-core convolutions prefer NHWC), off elsewhere.

Random numbers of the training step are drawn on the CPU with the translator's own generator
and then moved, so a seed means the same draws on every device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from MedSynthCommonLib.errors import MedSynthInputError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Accelerator:
    device: str = "cpu"  # a torch device string, resolved ("cpu", "cuda:0", "mps")
    precision: str = "fp32"  # "fp32", "bf16" or "fp16", resolved
    channels_last: bool = False

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    @property
    def autocast_dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self):
        """Context for forward passes and losses: mixed precision when asked, else nothing."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)

    def full_precision(self):
        """Context that turns autocast off again (backward passes, gradient penalties)."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, enabled=False)

    def grad_scaler(self):
        """A loss scaler, enabled only for fp16 (its gradients would underflow otherwise)."""
        import torch

        return torch.amp.GradScaler(self.device_type, enabled=self.precision == "fp16")

    def _memory_format(self, ndim: int):
        import torch

        if not self.channels_last or ndim not in (4, 5):
            return torch.contiguous_format
        return torch.channels_last if ndim == 4 else torch.channels_last_3d

    def module(self, module, spatial_dims: int = 2):
        """Move a module's parameters to the device (in place, so optimisers built on them stay valid)."""
        if self.channels_last:
            return module.to(device=self.device, memory_format=self._memory_format(spatial_dims + 2))
        return module.to(self.device)

    def tensor(self, tensor):
        """Move an input batch to the device, in the run's memory format."""
        moved = tensor.to(self.device, non_blocking=True)
        return moved.contiguous(memory_format=self._memory_format(moved.ndim)) if self.channels_last else moved

    def describe(self) -> dict:
        return {"device": self.device, "precision": self.precision, "channels_last": self.channels_last}


def resolve_accelerator(device: str = "auto", precision: str = "auto", channels_last: bool | None = None) -> Accelerator:
    """Turn user choices into a concrete ``Accelerator``; refuse what this torch cannot do."""
    import torch

    kind = device.split(":")[0]
    if kind not in DEVICES or (":" in device and kind != "cuda"):
        raise MedSynthInputError(f"Unknown device {device!r}; choose auto, cpu, cuda, cuda:N or mps.")
    if precision not in PRECISIONS:
        raise MedSynthInputError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if kind == "auto":
        device = kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise MedSynthInputError(
                f"Device {device!r} was asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
                "choose device cpu, or install a CUDA build of torch.")
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        if not 0 <= index < torch.cuda.device_count():
            raise MedSynthInputError(f"There is no GPU {index}; this machine has {torch.cuda.device_count()}.")
        device = f"cuda:{index}"
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise MedSynthInputError("Device 'mps' was asked for, but this Mac's torch has no MPS support; choose cpu.")
    if precision == "auto":
        if kind == "cuda":
            with torch.cuda.device(device):
                precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    return Accelerator(device=device, precision=precision,
                       channels_last=(kind == "cuda") if channels_last is None else bool(channels_last))
