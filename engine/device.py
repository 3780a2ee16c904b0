"""Where training runs and in which precision: device auto-selection and the autocast choice.

Auto-selection prefers CUDA, then Apple's MPS, then the CPU. Precision "auto" means bf16
autocast on CUDA (tensor cores; the loss is still reduced in float32) and, on the CPU, bf16 only
where the processor has native bf16 matrix units (AMX or AVX512-BF16): measured on this team's
2-core Xeon with AMX, a d_model-256 TabularResNet step ran ~2x faster under bf16 autocast with
the same loss curve (figures in bench/train_throughput.py); on CPUs without those units bf16 is
emulated and slower than float32, so it stays off. MPS stays in float32 (its autocast support
for bf16 is partial).
"""
from __future__ import annotations

import contextlib
import logging
from typing import ContextManager

import torch

from engine.config import PRECISIONS
from engine.errors import UserError

logger = logging.getLogger(__name__)


def select_device(preference: str = "auto") -> torch.device:
    """The torch device for a requested name; "auto" picks CUDA, then MPS, then CPU."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda was requested but CUDA is not available on this machine; use device=auto or device=cpu")
    if preference == "mps" and not _mps_available():
        raise UserError("device=mps was requested but Apple MPS is not available on this machine; use device=auto or device=cpu")
    if preference not in ("cpu", "cuda", "mps"):
        raise UserError(f"device must be one of auto, cpu, cuda, mps, got device={preference!r}")
    return torch.device(preference)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AMX tiles or AVX512-BF16), so autocast pays."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for name in probes:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:  # an old build without the probe's kernel: assume no
            continue
    return False


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a device and a precision setting; None means plain float32."""
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {PRECISIONS}, got precision={precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        if precision == "bf16" or cpu_has_fast_bf16():
            return torch.bfloat16
        return None
    if precision == "bf16":
        raise UserError(f"precision=bf16 is not supported on {device.type}; use precision=auto or precision=fp32")
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    """An autocast context for the device, or a no-op when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def describe(device: torch.device) -> str:
    """A short human name: "CUDA (NVIDIA H100)", "MPS", "CPU (2 threads)"."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def gpu_memory_mb(device: torch.device) -> float | None:
    """Peak GPU memory allocated by torch on this device in MiB; None off CUDA."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def generator_for(device: torch.device, seed: int) -> torch.Generator:
    """A seeded generator living on ``device`` (CUDA sampling needs a CUDA generator)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
