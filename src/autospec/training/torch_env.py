"""The run's torch environment: device, threads, deterministic algorithms and seeds."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from ..errors import InputError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without CUDA is an InputError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("run config field training.device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)


@contextlib.contextmanager
def torch_settings(threads: int | None, deterministic: bool, device: torch.device, seed: int) -> Iterator[None]:
    """Threads, deterministic algorithms and seeds for the run; torch's global settings are restored."""
    prev = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        if threads:
            torch.set_num_threads(threads)
        if deterministic:
            if device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.benchmark = False
            # on CUDA some kernels have no deterministic version: warn rather than fail there
            torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        yield
    finally:
        torch.set_num_threads(prev[0])
        torch.use_deterministic_algorithms(prev[1], warn_only=prev[2])


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (so that wall times measure it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
