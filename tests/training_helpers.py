"""Small real training sets for the training tests: textured and flat photos-in-miniature written as PNG files."""

from pathlib import Path

import numpy as np
from PIL import Image


def textured_image(rng: np.random.Generator, h: int, w: int, noise: float = 0.06) -> np.ndarray:
    """Smooth colour ramps plus sinusoidal stripes and noise: structure a small net can learn, gradients everywhere."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = []
    for c in range(3):
        fy, fx, phase = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4), rng.uniform(0, 6.3)
        base = 0.5 + 0.25 * np.sin(fy * yy + fx * xx + phase) + 0.15 * (xx / w - 0.5) * (c - 1)
        channels.append(base + noise * rng.standard_normal((h, w)))
    return (np.clip(np.stack(channels, axis=-1), 0, 1) * 255).round().astype(np.uint8)


def flat_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A sky-like image: one colour with a faint vertical shading."""
    colour = rng.uniform(0.2, 0.8, size=3)
    shade = np.linspace(0, 0.02, h)[:, None, None]
    return (np.clip(colour + shade + np.zeros((h, w, 3)), 0, 1) * 255).round().astype(np.uint8)


def write_photos(
    folder: Path,
    textured: int = 2,
    flat: int = 0,
    size: tuple[int, int] = (160, 192),
    seed: int = 0,
    noise: float = 0.06,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(textured):
        Image.fromarray(textured_image(rng, *size, noise=noise)).save(folder / f"tex{i}.png")
    for i in range(flat):
        Image.fromarray(flat_image(rng, *size)).save(folder / f"flat{i}.png")
    return folder
