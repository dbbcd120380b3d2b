"""Device handling in one place: ``auto`` picks CUDA, then MPS, then the CPU."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from advisor.core.errors import InvalidValueError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a ``torch.device``; refuse one that is absent."""
    import torch

    base = name.split(":")[0]
    if base not in DEVICE_CHOICES:
        raise InvalidValueError(
            f"the device must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N), got {name!r}."
        )
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError(
            f"device {name!r} was asked for but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False). Use --device cpu or --device auto."
        )
    if base == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InvalidValueError(
                "device 'mps' was asked for but Apple MPS is not available here. "
                "Use --device cpu or --device auto."
            )
    return torch.device(name)


def device_memory_bytes(device: torch.device) -> int | None:
    """Total memory of the device in bytes (GPU memory, or the machine's RAM for the CPU)."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
