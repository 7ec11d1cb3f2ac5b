"""What every step of the GPU check shares: the recorder that runs a step's checks inside its time budget and keeps
their figures on disk as they come (a step killed at its budget still reports what it measured), and the photos and
weights that travel with the check."""

import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import esrgan.models

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "benchmarks" / "photos"  # committed: ../shared does not travel to the device machine
WEIGHTS = Path(esrgan.models.__file__).parent / "weights"
EMBEDDED = (WEIGHTS / "esrgan_compact_x4_psnr.safetensors", WEIGHTS / "esrgan_compact_x4_gan.safetensors")
OUT_OF_TIME = "out of time"
RESERVED = {"check", "status", "reason", "error", "seconds"}  # what the recorder writes beside the figures


class Skip(Exception):
    """Raised by a check that cannot run here (no CUDA, quick mode); reported as skipped with this reason."""


def plain(value: Any) -> Any:
    """JSON-safe figures: numpy scalars to Python, inf and nan to strings (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass
class Recorder:
    """One step's checks, run one after the other; each check's figures are written to `path` as soon as it ends."""

    step: str
    path: Path
    budget_s: float
    device: str
    quick: bool
    earlier: dict[str, Any] = field(default_factory=dict)  # gpu_check.json as it stood when this step started
    started: float = field(default_factory=time.monotonic)
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def check(self, name: str, fn: Callable[..., dict[str, Any] | None], *args: Any, need_s: float = 0) -> dict:
        """Run `fn(*args)` as the check `name`; returns its figures ({} when it was skipped or failed).

        `need_s` is what the check is expected to take: with less left of the budget it is not started and counts as
        out of time, so the step ends inside its budget with every check accounted for.
        """
        record: dict[str, Any] = {"check": name}
        started = time.monotonic()
        figures: dict[str, Any] = {}
        if self.left() < need_s:
            record.update(status="skipped", reason=f"{OUT_OF_TIME}: needs ~{need_s:.0f} s, {self.left():.0f} s left")
        else:
            try:
                figures = fn(*args) or {}
                clash = set(figures) & RESERVED
                if clash:
                    raise ValueError(f"figure names {sorted(clash)} are the recorder's own")
                record.update(status="ok", **figures)
            except Skip as exc:
                record.update(status="skipped", reason=str(exc))
            except Exception as exc:
                traceback.print_exc()
                record.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        record["seconds"] = round(time.monotonic() - started, 3)
        self.checks.append(plain(record))
        self.path.write_text(json.dumps({"step": self.step, "checks": self.checks}, indent=1))
        shown = {k: v for k, v in self.checks[-1].items() if k not in ("check", "status")}
        print(f"[{self.step}] {name}: {record['status']} {json.dumps(shown)}", flush=True)
        return figures

    def earlier_figures(self, step: str, check: str) -> dict[str, Any]:
        """The figures of a check of an earlier step ({} when it did not run)."""
        for entry in self.earlier.get("steps", []):
            if entry["name"] == step:
                return next((c for c in entry.get("checks", []) if c["check"] == check), {})
        return {}


def photo_paths() -> list[Path]:
    return sorted(PHOTOS.glob("*.png"))


def photo(index: int) -> np.ndarray:
    """One of the travelling photos as float32 H x W x 3 in [0, 1]."""
    paths = photo_paths()
    with Image.open(paths[index % len(paths)]) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255


def mosaic(width: int, height: int) -> np.ndarray:
    """A width x height float32 image tiled from the travelling photos: real texture at any size."""
    side = photo(0).shape[0]
    rows, cols = -(-height // side), -(-width // side)
    grid = [np.concatenate([photo(r * cols + c) for c in range(cols)], axis=1) for r in range(rows)]
    return np.ascontiguousarray(np.concatenate(grid, axis=0)[:height, :width])


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: str) -> float | None:
    """torch.cuda.max_memory_allocated since the last reset_peak, in GiB; None on the CPU."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else None
