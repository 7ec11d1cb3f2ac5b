"""`esrgan data download`: the HR training sets the paper used, from their official URLs, verified where we can.

Checksums: the DIV2K authors publish none. The sha256 digests and sizes below are the ones TensorFlow Datasets
publishes for these exact URLs (tensorflow/datasets, tensorflow_datasets/url_checksums/div2k.txt). Flickr2K (EDSR
authors, SNU) has no published checksum that we know of, so it is downloaded unverified and we say so; we do not
make one up.
Licences: DIV2K is "for academic research purpose only"; Flickr2K holds Flickr images under their owners' terms.
"""

import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from esrgan.models.download import fetch


@dataclass(frozen=True)
class Archive:
    url: str
    sha256: str | None  # None: nobody publishes one
    size: int | None = None  # bytes, as published (shown before a download starts)
    hr_folder: str = ""  # folder of HR images inside the archive

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


DATASETS: dict[str, list[Archive]] = {
    "div2k": [
        Archive(
            "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
            "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
            3_530_603_713,
            "DIV2K_train_HR",
        ),
        Archive(
            "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
            "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
            448_993_893,
            "DIV2K_valid_HR",
        ),
    ],
    "flickr2k": [Archive("https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar", None, None, "Flickr2K/Flickr2K_HR")],
}


def extract(archive: Path, out_dir: Path) -> None:
    """Unpack a .zip or .tar(.gz) into out_dir; members that would land outside it are refused."""
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise ValueError(f"{archive}: member {name!r} would be written outside {out_dir}")
            zf.extractall(out_dir)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            tf.extractall(out_dir, filter="data")
    else:
        raise ValueError(f"{archive}: neither a zip nor a tar archive")


def download_dataset(
    archives: list[Archive], out_dir: Path, keep_archives: bool = True, progress: bool = True
) -> list[Path]:
    """Fetch (resuming, retrying, verifying) and unpack each archive; returns the HR image folders."""
    folders = []
    for archive in archives:
        path = fetch(archive.url, out_dir / "archives" / archive.filename, sha256=archive.sha256, progress=progress)
        extract(path, out_dir)
        if not keep_archives:
            path.unlink()
        folders.append(out_dir / archive.hr_folder)
    return folders
