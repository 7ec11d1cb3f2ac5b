"""A run directory's `checkpoint.pt`: a plain dict (weights, optimisers, step, config, RNG states), written atomically
and read with `torch.load(weights_only=True)`, so a run directory from elsewhere cannot run code when resumed or
exported. That is why every value in it is a tensor or a plain Python value: numpy's RNG state is stored as a list.
"""

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esrgan.models.checkpoints import explain_torch_load
from esrgan.training.config import ConfigError

CHECKPOINT = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """Every RNG the loop draws from, in a form `weights_only` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic: a crash while writing leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_run(run_dir: Path) -> dict[str, Any]:
    """The checkpoint dict of a run directory, on the CPU."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {CHECKPOINT} (not a training run directory?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad bytes
        raise ConfigError(f"{path}: {explain_torch_load(exc, path)}") from exc
