"""Training data: sub-image preparation (the reference recipe) and a seeded, texture-aware paired-patch dataset.

`prepare` cuts every HR image into 480 px sub-images with step 240 (plus a last row/column flush with the border when
more than `thresh` pixels would be left over), makes each LR counterpart with MATLAB-compatible bicubic
(`training.bicubic`), and writes both as PNG with a `manifest.tsv`.

`PairedPatches` maps a *global sample number* n to one (LR, HR) patch pair. Everything random about sample n comes
from `numpy.random.default_rng((seed, n))` and from an epoch permutation seeded by `(seed, epoch)`, so a run that
restarts at iteration i only has to start the sampler at n = i * batch to see exactly the batches it would have seen:
no DataLoader or worker RNG state needs saving.

Texture rule (our photos are ~70% flat sky, bokeh and blur): a candidate HR patch whose mean absolute gradient
(luma in [0, 1], mean of |dx| and |dy|) is below `min_gradient` is redrawn from a fresh random sub-image and position,
at most `max_redraws` times; if every draw is flat, the most textured draw is used. On the Debian photo set
(data/hr), 0.01 keeps 33% of 128 px tiles, 87% of those a bicubic x4 round trip cannot reproduce above 35 dB
(the "textured" tiles).
"""

import csv
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from esrgan.models.images import IMAGE_SUFFIXES, list_images
from esrgan.training.bicubic import downscale_uint8

MANIFEST = "manifest.tsv"
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8; palette, gray and alpha images are converted (alpha dropped) so every sample has 3 channels."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_crop(path: Path, y: int, x: int, size: int) -> np.ndarray:
    """A size x size crop; .npy files are memory-mapped so only the crop's rows are read."""
    if path.suffix == ".npy":
        return np.array(np.load(path, mmap_mode="r")[y : y + size, x : x + size])
    return read_rgb(path)[y : y + size, x : x + size]


def mean_gradient(rgb: np.ndarray) -> float:
    """Mean absolute luma gradient of an HxWx3 uint8 patch, in [0, 1] units: our texture measure."""
    y = rgb.astype(np.float32) @ LUMA / 255.0
    return 0.5 * float(np.abs(np.diff(y, axis=0)).mean() + np.abs(np.diff(y, axis=1)).mean())


def crop_positions(length: int, crop: int, step: int, thresh: int) -> list[int]:
    """Start offsets along one axis, as the reference `extract_subimages` computes them."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, step))
    if length - (starts[-1] + crop) > thresh:
        starts.append(length - crop)
    return starts


@dataclass(frozen=True)
class SubImage:
    name: str
    source: str
    y: int
    x: int
    height: int
    width: int
    gradient: float


def _write(path: Path, img: np.ndarray) -> None:
    if path.suffix == ".npy":
        np.save(path, img)
    else:
        Image.fromarray(img).save(path, compress_level=1)


def _prepare_one(args: tuple[Path, Path, int, int, int, int, str]) -> list[SubImage]:
    path, out_dir, scale, crop, step, thresh, fmt = args
    img = read_rgb(path)
    h, w = img.shape[:2]
    rows = []
    for y in crop_positions(h, crop, step, thresh):
        for x in crop_positions(w, crop, step, thresh):
            sub = img[y : y + crop, x : x + crop]
            sh, sw = (sub.shape[0] // scale) * scale, (sub.shape[1] // scale) * scale  # images smaller than `crop`
            sub = np.ascontiguousarray(sub[:sh, :sw])
            name = f"{path.stem}_y{y:05d}_x{x:05d}.{fmt}"
            _write(out_dir / "hr" / name, sub)
            _write(out_dir / f"lr_x{scale}" / name, downscale_uint8(sub, scale))
            rows.append(SubImage(name, path.name, y, x, sh, sw, mean_gradient(sub)))
    return rows


def prepare(
    hr_dir: Path,
    out_dir: Path,
    scale: int = 4,
    crop: int = 480,
    step: int = 240,
    thresh: int = 0,
    workers: int = 1,
    fmt: str = "png",
    progress: bool = True,
) -> list[SubImage]:
    """Cut HR images into sub-images and write HR/LR pairs plus `manifest.tsv`; returns the manifest rows.

    `fmt` "png" is compact and portable; "npy" (uncompressed, 4x the disk) lets the dataset memory-map a sub-image
    and read only the rows of its crop, which is what keeps texture-rejection redraws cheap on a CPU.
    """
    from tqdm import tqdm

    if fmt not in ("png", "npy"):
        raise ValueError(f"format must be png or npy, not {fmt!r}")
    if crop % scale:
        raise ValueError(f"crop {crop} must be a multiple of the scale {scale}")
    images = list_images(hr_dir)
    if not images:
        raise FileNotFoundError(f"{hr_dir}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    (out_dir / "hr").mkdir(parents=True, exist_ok=True)
    (out_dir / f"lr_x{scale}").mkdir(parents=True, exist_ok=True)
    jobs = [(p, out_dir, scale, crop, step, thresh, fmt) for p in images]
    rows: list[SubImage] = []
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for part in tqdm(pool.map(_prepare_one, jobs), total=len(jobs), desc="sub-images", disable=not progress):
            rows.extend(part)
    with open(out_dir / MANIFEST, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["name", "source", "y", "x", "height", "width", "gradient", "scale"])
        for r in rows:
            writer.writerow([r.name, r.source, r.y, r.x, r.height, r.width, f"{r.gradient:.6f}", scale])
    return rows


def read_manifest(root: Path) -> tuple[list[SubImage], int]:
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: make the training set with `esrgan data prepare HR_DIR {root}`")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path} lists no sub-images")
    scale = int(rows[0]["scale"])
    subs = [
        SubImage(
            r["name"], r["source"], int(r["y"]), int(r["x"]), int(r["height"]), int(r["width"]), float(r["gradient"])
        )
        for r in rows
    ]
    return subs, scale


def augment(lr: np.ndarray, hr: np.ndarray, flip: bool, rot: int) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal flip, then `rot` quarter turns: the 8 dihedral variants, applied identically to LR and HR."""
    if flip:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    return np.rot90(lr, rot), np.rot90(hr, rot)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """CHW float32 in [0, 1], converted in numpy: tiny torch ops pay for thread wake-ups on a busy machine."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0))


class PairedPatches(Dataset):
    """(LR, HR) float patches in [0, 1], CHW, for global sample numbers n (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        scale: int,
        patch: int,
        seed: int = 0,
        flip: bool = True,
        rotate: bool = True,
        min_gradient: float = 0.0,
        max_redraws: int = 0,
    ) -> None:
        subs, prepared_scale = read_manifest(root)
        if prepared_scale != scale:
            raise ValueError(f"{root} was prepared for x{prepared_scale}, the config asks for x{scale}")
        if patch % scale:
            raise ValueError(f"HR patch {patch} must be a multiple of the scale {scale}")
        self.subs = [s for s in subs if s.height >= patch and s.width >= patch]
        if not self.subs:
            raise ValueError(f"{root}: no sub-image is at least {patch}x{patch}")
        self.root, self.scale, self.patch, self.seed = root, scale, patch, seed
        self.flip, self.rotate = flip, rotate
        self.min_gradient, self.max_redraws = min_gradient, max_redraws
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.subs)

    def _sub_index(self, n: int) -> int:
        epoch = n // len(self.subs)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng((self.seed, epoch)).permutation(len(self.subs))
            self._perm_epoch = epoch
        return int(self._perm[n % len(self.subs)])

    def _draw(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sub = self.subs[index]
        lp = self.patch // self.scale
        ly = int(rng.integers(0, sub.height // self.scale - lp + 1))
        lx = int(rng.integers(0, sub.width // self.scale - lp + 1))
        hy, hx = ly * self.scale, lx * self.scale
        lr = read_crop(self.root / f"lr_x{self.scale}" / sub.name, ly, lx, lp)
        hr = read_crop(self.root / "hr" / sub.name, hy, hx, self.patch)
        return lr, hr

    def __getitem__(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, int(n)))
        lr, hr = self._draw(self._sub_index(int(n)), rng)
        if self.min_gradient > 0:
            best, best_grad = (lr, hr), mean_gradient(hr)
            for _ in range(self.max_redraws):
                if best_grad >= self.min_gradient:
                    break
                lr, hr = self._draw(int(rng.integers(len(self.subs))), rng)
                grad = mean_gradient(hr)
                if grad > best_grad:
                    best, best_grad = (lr, hr), grad
            lr, hr = best
        flip = bool(self.flip and rng.integers(2))
        rot = int(rng.integers(4)) if self.rotate else 0
        lr, hr = augment(lr, hr, flip, rot)
        return to_tensor(lr), to_tensor(hr)


class SampleStream(Sampler[int]):
    """Global sample numbers start, start + 1, ... without end: the loop decides when to stop."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        n = self.start
        while True:
            yield n
            n += 1


def _leave_stopping_to_the_main(worker_id: int) -> None:
    """A data worker ignores SIGTERM and Ctrl-C: a stop sent to the whole process group (systemd's default, `kill --
    -PGID`, Ctrl-C in a terminal) would otherwise kill it first, and the main process would die on the lost worker
    instead of finishing its step and saving a checkpoint. The main shuts its workers down, or they see it gone."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(
    dataset: PairedPatches, batch: int, start_step: int, workers: int, prefetch: int, pin_memory: bool = False
) -> torch.utils.data.DataLoader:
    """Batches for iterations start_step, start_step + 1, ...: batch i holds samples i*batch ... (i+1)*batch - 1."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        sampler=SampleStream(start_step * batch),
        num_workers=workers,
        prefetch_factor=prefetch if workers > 0 else None,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        drop_last=True,
        worker_init_fn=_leave_stopping_to_the_main,
    )
