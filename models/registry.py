"""Known pretrained models: PSNR/GAN pairs blended by alpha, and single models used as they are. Plain dicts, like
timm's `default_cfgs` (a handful of models, so no decorators).

Interpolation (`models/interpolate.py`) only works well for a pair whose alpha-1 network was fine-tuned from its
alpha-0 network, as every pair listed here was: the paper's two stages, Real-ESRGAN's RealESRNet -> RealESRGAN, and
Real-ESRGAN's general model with its weak-denoise twin (`realesr-general-wdn-x4v3` at alpha 0, `realesr-general-x4v3`
at alpha 1: Real-ESRGAN's `-dn` denoise strength is this alpha). Pairing two unrelated files of the same architecture
loads fine and blends into garbage. The two ends keep the names `psnr` (alpha 0) and `gan` (alpha 1) throughout.

Each pair says what its slider means (`AlphaScale`: the ESRGAN pairs trade detail against faithfulness, the general
pair removes noise) and where it starts (`default_alpha`).

Checksums: a full sha256 where one is published and consistent across independent sources; otherwise the 8-hex
prefix that BasicSR-style names carry (`-ff704c30.pth`). None of the files could be downloaded and hashed here (no
network); where each sha256 was found is noted beside it, and README.md ("Pretrained models") lists the same.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from esrgan.models.download import DownloadError, fetch, verify

WEIGHTS_DIR = Path(__file__).parent / "weights"  # the embedded default pair ships inside the package
_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"
# Google Drive file id of the official PSNR model, from BasicSR's scripts/download_pretrained_models.py.
_ESRGAN_PSNR_DRIVE = "https://drive.google.com/file/d/1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM/view"
# Where the Real-ESRGAN release hashes below were found (none could be computed here): the sha256sums of an Arch
# Linux AUR PKGBUILD that packages every Real-ESRGAN release file (python-realesrgan 0.3.0), and the pinned hashes of
# several unrelated projects' download manifests (one names the Hugging Face LFS sha256 of a mirror), all agreeing.
# Entries marked "two sources" below were found in the PKGBUILD and in at least one such manifest.


@dataclass(frozen=True)
class FileSpec:
    filename: str
    url: str | None  # None: no direct download (Google Drive only, or shipped in models/weights/)
    layout: str  # models.layouts.Layout value, or "ours"
    scale: int
    provenance: str  # where it comes from and under which licence
    sha256: str | None = None
    sha256_prefix: str | None = None
    bundled: bool = False  # lives in models/weights/, not in the cache
    note: str = ""  # what a user must know, e.g. how to get it by hand


@dataclass(frozen=True)
class AlphaScale:
    """What a pair's alpha means to a person: the quantity it sets and the words at its two ends."""

    name: str  # "detail"
    low: str  # at alpha 0: "faithful"
    high: str  # at alpha 1: "detailed"


DETAIL = AlphaScale("detail", "faithful", "detailed")  # a PSNR network and the GAN fine-tuned from it
DENOISE = AlphaScale("denoise", "keep noise", "remove noise")  # Real-ESRGAN's general model and its -wdn twin
PAPER_ALPHA = 0.8  # the blend the ESRGAN paper shows (section 3.4, Fig. 10); a pair without a measured default


@dataclass(frozen=True)
class PairSpec:
    psnr: FileSpec  # the alpha-0 network
    gan: FileSpec  # the alpha-1 network, fine-tuned from the alpha-0 one
    note: str
    default_alpha: float = PAPER_ALPHA  # where the slider starts; each entry's comment says where its value comes from
    alpha: AlphaScale = DETAIL


@dataclass(frozen=True)
class SingleSpec:
    """A model used as it is: no alpha."""

    weights: FileSpec
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
        # measured on the six held-out validation photos: PSNR-Y above bicubic's at every alpha, and the highest alpha
        # whose output shows no periodic texture (ripples along edges from 0.8; models/weights/MODEL_CARD.md, "Default
        # alpha")
        default_alpha=0.6,
    ),
    "realesrgan-x4plus": PairSpec(
        psnr=FileSpec(
            "RealESRNet_x4plus.pth",
            url=f"{_REAL_ESRGAN}/v0.1.1/RealESRNet_x4plus.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.1.1, BSD-3-Clause",
            sha256="a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df",  # two sources
        ),
        gan=FileSpec(
            "RealESRGAN_x4plus.pth",
            url=f"{_REAL_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.1.0, BSD-3-Clause",
            sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",  # two sources
        ),
        note="Real-ESRGAN (real-world degradations); RealESRGAN_x4plus was fine-tuned from RealESRNet_x4plus.",
        default_alpha=PAPER_ALPHA,  # Real-ESRGAN recommends no blend for this pair: the paper's value
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
        default_alpha=PAPER_ALPHA,  # the paper's own pair at the paper's blend
    ),
    "realesr-general-x4v3": PairSpec(
        psnr=FileSpec(
            "realesr-general-wdn-x4v3.pth",
            url=f"{_REAL_ESRGAN}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.2.5.0 (SRVGGNetCompact, weak denoise), BSD-3-Clause",
            sha256="1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca",  # two sources
        ),
        gan=FileSpec(
            "realesr-general-x4v3.pth",
            url=f"{_REAL_ESRGAN}/v0.2.5.0/realesr-general-x4v3.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.2.5.0 (SRVGGNetCompact), BSD-3-Clause",
            sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",  # two sources
        ),
        note="Real-ESRGAN's small general model (SRVGGNetCompact, 1.2 M parameters); alpha is its denoise strength.",
        default_alpha=0.5,  # the authors' default: inference_realesrgan.py's --denoise_strength 0.5
        alpha=DENOISE,
    ),
}

SINGLES: dict[str, SingleSpec] = {
    "realesr-animevideov3": SingleSpec(
        FileSpec(
            "realesr-animevideov3.pth",
            url=f"{_REAL_ESRGAN}/v0.2.5.0/realesr-animevideov3.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.2.5.0 (SRVGGNetCompact), BSD-3-Clause",
            sha256="b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",  # two sources
        ),
        note="Real-ESRGAN's tiny anime video model (SRVGGNetCompact, 16 convs).",
    ),
    "realesrgan-x4plus-anime-6b": SingleSpec(
        FileSpec(
            "RealESRGAN_x4plus_anime_6B.pth",
            url=f"{_REAL_ESRGAN}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
            layout="basicsr",
            scale=4,
            provenance="xinntao/Real-ESRGAN release v0.2.2.4 (RRDBNet, 6 blocks), BSD-3-Clause",
            sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",  # two sources
        ),
        note="Real-ESRGAN for anime illustrations (RRDBNet with 6 blocks).",
    ),
    "realesrgan-x2plus": SingleSpec(
        FileSpec(
            "RealESRGAN_x2plus.pth",
            url=f"{_REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth",
            layout="basicsr",
            scale=2,
            provenance="xinntao/Real-ESRGAN release v0.2.1 (RRDBNet x2, pixel-unshuffle in front), BSD-3-Clause",
            sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",  # two sources
        ),
        note="Real-ESRGAN at x2 (real-world degradations).",
    ),
}


def default_cache_dir() -> Path:
    """`$ESRGAN_CACHE_DIR`, else `~/.cache/esrgan`."""
    return Path(os.environ.get("ESRGAN_CACHE_DIR") or Path.home() / ".cache" / "esrgan")


def _unknown(name: str) -> ValueError:
    known = f"known pairs: {', '.join(PAIRS)}; single models: {', '.join(SINGLES)}"
    return ValueError(f"unknown model pair {name!r}; {known}")


def _pair(name: str) -> PairSpec:
    if name in SINGLES:
        raise ValueError(f"{name!r} is a single model, not a PSNR/GAN pair: it takes no alpha")
    if name not in PAIRS:
        raise _unknown(name)
    return PAIRS[name]


def starting_alpha(name: str | None) -> float:
    """Where a pair's alpha starts: its registry default, or the paper's for a pair of one's own files (None)."""
    return PAPER_ALPHA if name is None else _pair(name).default_alpha


def model_files(name: str) -> tuple[FileSpec, ...]:
    """The files of a known model: (PSNR, GAN) for a pair, (weights,) for a single model."""
    if name in SINGLES:
        return (SINGLES[name].weights,)
    if name not in PAIRS:
        raise _unknown(name)
    return PAIRS[name].psnr, PAIRS[name].gan


def file_path(spec: FileSpec, cache_dir: Path | None = None) -> Path:
    return WEIGHTS_DIR / spec.filename if spec.bundled else (cache_dir or default_cache_dir()) / spec.filename


def _local(name: str, specs: tuple[FileSpec, ...], cache_dir: Path | None) -> tuple[Path, ...]:
    """Local paths of `specs`, or FileNotFoundError that says how to get the first missing file."""
    paths = []
    for spec in specs:
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
    return tuple(paths)


def resolve_pair(name: str, cache_dir: Path | None = None) -> tuple[Path, Path]:
    """Local PSNR and GAN paths of a known pair, or FileNotFoundError that says how to get the missing file."""
    pair = _pair(name)
    psnr, gan = _local(name, (pair.psnr, pair.gan), cache_dir)
    return psnr, gan


def resolve_model(name: str, cache_dir: Path | None = None) -> tuple[Path, Path | None]:
    """(PSNR, GAN) paths of a known pair, or (weights, None) of a single model; never downloads."""
    paths = _local(name, model_files(name), cache_dir)
    return paths[0], paths[1] if len(paths) == 2 else None


def download_model(name: str, cache_dir: Path | None = None, progress: bool = True) -> tuple[Path, ...]:
    """Fetch (or verify what is already there) every file of a known model into the cache; returns their paths in
    `model_files` order."""
    specs = model_files(name)
    for spec in sorted(specs, key=lambda s: s.url is None):  # what can be fetched first
        path = file_path(spec, cache_dir)
        if spec.url:
            fetch(spec.url, path, sha256=spec.sha256, sha256_prefix=spec.sha256_prefix, progress=progress)
        elif not path.is_file():
            raise DownloadError(f"{name}: {spec.filename} cannot be downloaded automatically. {spec.note}")
        elif spec.sha256 or spec.sha256_prefix:
            verify(path, spec.sha256, spec.sha256_prefix)
    return _local(name, specs, cache_dir)
