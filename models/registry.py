"""Known pretrained PSNR/GAN pairs: a plain dict, like timm's `default_cfgs` (one model family, so no decorators).

Interpolation (`models/interpolate.py`) only works well for a pair whose GAN model was fine-tuned from its PSNR
model, as every pair listed here was: the paper's two stages, and Real-ESRGAN's RealESRNet -> RealESRGAN. Pairing two
unrelated files of the same architecture loads fine and blends into garbage.

Checksums: a full sha256 where one is published and consistent across independent sources; otherwise the 8-hex
prefix that BasicSR-style names carry (`-ff704c30.pth`); RealESRNet_x4plus has neither (see its note).
"""

import os
from dataclasses import dataclass
from pathlib import Path

from esrgan.models.download import DownloadError, fetch, verify

WEIGHTS_DIR = Path(__file__).parent / "weights"  # the embedded default pair ships inside the package
_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"
# Google Drive file id of the official PSNR model, from BasicSR's scripts/download_pretrained_models.py.
_ESRGAN_PSNR_DRIVE = "https://drive.google.com/file/d/1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM/view"


@dataclass(frozen=True)
class FileSpec:
    filename: str
    url: str | None  # None: no direct download (Google Drive only, or shipped in models/weights/)
    layout: str  # models.checkpoints.Layout value, or "ours"
    scale: int
    provenance: str  # where it comes from and under which licence
    sha256: str | None = None
    sha256_prefix: str | None = None
    bundled: bool = False  # lives in models/weights/, not in the cache
    note: str = ""  # what a user must know, e.g. how to get it by hand


@dataclass(frozen=True)
class PairSpec:
    psnr: FileSpec
    gan: FileSpec
    note: str


DEFAULT_PAIR = "esrgan-compact-x4"

PAIRS: dict[str, PairSpec] = {
    "esrgan-compact-x4": PairSpec(
        psnr=FileSpec(
            "esrgan_compact_x4_psnr.safetensors",
            url=None,
            layout="ours",
            scale=4,
            provenance="trained by this project (training/), Apache-2.0",
            bundled=True,
        ),
        gan=FileSpec(
            "esrgan_compact_x4_gan.safetensors",
            url=None,
            layout="ours",
            scale=4,
            provenance="trained by this project (training/), Apache-2.0",
            bundled=True,
        ),
        note="Our small embedded default; the GAN stage was fine-tuned from the PSNR stage.",
    ),
    "realesrgan-x4plus": PairSpec(
        psnr=FileSpec(
            "RealESRNet_x4plus.pth",
            url=f"{_REAL_ESRGAN}/v0.1.1/RealESRNet_x4plus.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.1.1, BSD-3-Clause",
            note="No checksum is published for this file and its name carries none: it is downloaded unverified "
            "over HTTPS and its sha256 is printed.",
        ),
        gan=FileSpec(
            "RealESRGAN_x4plus.pth",
            url=f"{_REAL_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.1.0, BSD-3-Clause",
            sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        ),
        note="Real-ESRGAN (real-world degradations); RealESRGAN_x4plus was fine-tuned from RealESRNet_x4plus.",
    ),
    "esrgan-official-x4": PairSpec(
        psnr=FileSpec(
            "ESRGAN_PSNR_SRx4_DF2K_official-150ff491.pth",
            url=None,
            layout="basicsr",
            scale=4,
            provenance="BasicSR model zoo (official ESRGAN weights converted by xinntao), Apache-2.0",
            sha256_prefix="150ff491",
            note=f"Hosted on Google Drive only: open {_ESRGAN_PSNR_DRIVE} in a browser (or run `gdown "
            "1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM`), confirm the download, and put the file in the cache directory "
            "under exactly this name; its sha256 must start with 150ff491.",
        ),
        gan=FileSpec(
            "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            url=f"{_REAL_ESRGAN}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.1.1 (official ESRGAN, BasicSR layout), Apache-2.0",
            sha256_prefix="ff704c30",
        ),
        note="The paper's own models; the GAN model was fine-tuned from the PSNR model.",
    ),
}


def default_cache_dir() -> Path:
    """`$ESRGAN_CACHE_DIR`, else `~/.cache/esrgan`."""
    return Path(os.environ.get("ESRGAN_CACHE_DIR") or Path.home() / ".cache" / "esrgan")


def _pair(name: str) -> PairSpec:
    if name not in PAIRS:
        raise ValueError(f"unknown model pair {name!r}; known pairs: {', '.join(PAIRS)}")
    return PAIRS[name]


def file_path(spec: FileSpec, cache_dir: Path | None = None) -> Path:
    return WEIGHTS_DIR / spec.filename if spec.bundled else (cache_dir or default_cache_dir()) / spec.filename


def resolve_pair(name: str, cache_dir: Path | None = None) -> tuple[Path, Path]:
    """Local PSNR and GAN paths of a known pair, or FileNotFoundError that says how to get the missing file."""
    pair = _pair(name)
    paths = []
    for spec in (pair.psnr, pair.gan):
        path = file_path(spec, cache_dir)
        if not path.is_file():
            if spec.bundled:
                how = "The embedded weights have not been trained and added yet (see training/ and models/weights/)."
            elif spec.url is None:
                how = spec.note
            else:
                how = f"Run `esrgan weights download {name}` first."
            raise FileNotFoundError(f"{name}: {path} is missing. {how}")
        paths.append(path)
    return paths[0], paths[1]


def download_pair(name: str, cache_dir: Path | None = None, progress: bool = True) -> tuple[Path, Path]:
    """Fetch (or verify what is already there) both files of a pair into the cache; returns their paths."""
    pair = _pair(name)
    for spec in sorted((pair.psnr, pair.gan), key=lambda s: s.url is None):  # what can be fetched first
        path = file_path(spec, cache_dir)
        if spec.url:
            fetch(spec.url, path, sha256=spec.sha256, sha256_prefix=spec.sha256_prefix, progress=progress)
        elif not path.is_file():
            raise DownloadError(f"{name}: {spec.filename} cannot be downloaded automatically. {spec.note}")
        elif spec.sha256 or spec.sha256_prefix:
            verify(path, spec.sha256, spec.sha256_prefix)
    return resolve_pair(name, cache_dir)
