"""training/data.py on real files: sub-image preparation, paired crops, texture rejection, seeded loaders."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import write_photos

from esrgan.training.bicubic import downscale_uint8
from esrgan.training.data import PairedPatches, crop_positions, make_loader, mean_gradient, prepare, read_manifest


def test_crop_positions_follow_the_reference_recipe() -> None:
    assert crop_positions(1000, 480, 240, 0) == [0, 240, 480, 520]  # last one flush with the border
    assert crop_positions(960, 480, 240, 0) == [0, 240, 480]  # nothing left over
    assert crop_positions(1000, 480, 240, 40) == [0, 240, 480]  # 40 px left over is not more than thresh
    assert crop_positions(300, 480, 240, 0) == [0]  # smaller than a crop: one (smaller) sub-image


@pytest.mark.parametrize("fmt", ["png", "npy"])
def test_prepare_writes_matlab_bicubic_pairs(tmp_path: Path, fmt: str) -> None:
    photos = write_photos(tmp_path / "hr", textured=2, size=(150, 190))
    rows = prepare(photos, tmp_path / "sub", scale=4, crop=96, step=48, workers=1, fmt=fmt, progress=False)
    subs, scale = read_manifest(tmp_path / "sub")
    assert scale == 4 and len(subs) == len(rows) == 2 * 3 * 3  # y in 0, 48, 54 and x in 0, 48, 94
    source = np.asarray(Image.open(photos / "tex0.png"))
    for sub in subs[:3]:
        hr_path, lr_path = tmp_path / "sub" / "hr" / sub.name, tmp_path / "sub" / "lr_x4" / sub.name
        hr = np.load(hr_path) if fmt == "npy" else np.asarray(Image.open(hr_path))
        lr = np.load(lr_path) if fmt == "npy" else np.asarray(Image.open(lr_path))
        assert np.array_equal(hr, source[sub.y : sub.y + 96, sub.x : sub.x + 96])
        assert np.array_equal(lr, downscale_uint8(hr, 4))
        assert sub.gradient == pytest.approx(mean_gradient(hr), abs=1e-6)


def test_prepare_rejects_a_crop_that_is_not_a_multiple_of_the_scale(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple"):
        prepare(write_photos(tmp_path / "hr", 1), tmp_path / "sub", scale=4, crop=98, progress=False)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    photos = write_photos(root / "hr", textured=2, flat=2, size=(128, 128))
    prepare(photos, root / "sub", scale=4, crop=64, step=32, fmt="npy", progress=False)
    return root / "sub"


def dihedral(img: torch.Tensor) -> list[torch.Tensor]:
    return [torch.rot90(v, k, dims=(1, 2)) for v in (img, torch.flip(img, dims=(2,))) for k in range(4)]


def test_patches_are_seeded_paired_and_augmented_identically(prepared: Path) -> None:
    plain = PairedPatches(prepared, 4, 32, seed=3, flip=False, rotate=False)
    augmented = PairedPatches(prepared, 4, 32, seed=3)
    again = PairedPatches(prepared, 4, 32, seed=3)
    other_seed = PairedPatches(prepared, 4, 32, seed=4)
    transforms = set()
    for n in range(24):
        lr, hr = augmented[n]
        assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32) and lr.dtype == torch.float32
        assert all(torch.equal(a, b) for a, b in zip(augmented[n], again[n], strict=True))
        lr0, hr0 = plain[n]
        # The same crop, with the same one of the 8 flips/rotations applied to LR and HR.
        matches = [k for k, v in enumerate(dihedral(hr0)) if torch.equal(v, hr)]
        assert matches and any(torch.equal(dihedral(lr0)[k], lr) for k in matches)
        transforms.update(matches)
        # LR is the MATLAB-bicubic image of this HR crop (up to the sub-image border it was computed with).
        lr_of_hr = downscale_uint8((hr0.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), 4) / 255.0
        assert np.abs(lr_of_hr[2:-2, 2:-2] - lr0.permute(1, 2, 0).numpy()[2:-2, 2:-2]).max() < 1.5 / 255
    assert len(transforms) >= 4
    assert not all(torch.equal(augmented[n][1], other_seed[n][1]) for n in range(8))


def test_texture_rejection_prefers_textured_patches(prepared: Path) -> None:
    def textured_share(ds: PairedPatches) -> float:
        grads = [mean_gradient((ds[n][1].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for n in range(40)]
        return float(np.mean(np.array(grads) >= 0.01))

    unfiltered = textured_share(PairedPatches(prepared, 4, 32, seed=0))
    filtered = textured_share(PairedPatches(prepared, 4, 32, seed=0, min_gradient=0.01, max_redraws=6))
    assert 0.2 < unfiltered < 0.8  # half the photos are flat sky
    assert filtered >= 0.95


def test_loader_resumes_at_the_same_batch(prepared: Path) -> None:
    ds = PairedPatches(prepared, 4, 32, seed=1, min_gradient=0.01, max_redraws=2)
    from_start = iter(make_loader(ds, batch=3, start_step=0, workers=2, prefetch=2))
    batches = [next(from_start) for _ in range(4)]
    resumed = next(iter(make_loader(ds, batch=3, start_step=3, workers=0, prefetch=2)))
    assert torch.equal(resumed[0], batches[3][0]) and torch.equal(resumed[1], batches[3][1])
    assert not torch.equal(batches[2][1], batches[3][1])


def test_dataset_refuses_a_scale_it_was_not_prepared_for(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="x4"):
        PairedPatches(prepared, 2, 32)
    with pytest.raises(FileNotFoundError, match="esrgan data prepare"):
        PairedPatches(tmp_path, 4, 32)


@pytest.fixture
def http_root(tmp_path: Path):
    """A real HTTP server on loopback serving tmp_path/www."""
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_and_unpacks_zip_and_tar(tmp_path: Path, http_root) -> None:
    import hashlib
    import tarfile
    import zipfile

    from esrgan.models.download import ChecksumError
    from esrgan.training.download import Archive, download_dataset

    www, base = http_root
    photos = write_photos(tmp_path / "photos", textured=2, size=(40, 40))
    with zipfile.ZipFile(www / "Set_HR.zip", "w") as zf:
        for p in photos.iterdir():
            zf.write(p, f"Set_HR/{p.name}")
    with tarfile.open(www / "Other.tar", "w") as tf:
        tf.add(photos, arcname="Other/Other_HR")
    digest = hashlib.sha256((www / "Set_HR.zip").read_bytes()).hexdigest()

    archives = [
        Archive(f"{base}/Set_HR.zip", digest, None, "Set_HR"),
        Archive(f"{base}/Other.tar", None, None, "Other/Other_HR"),
    ]
    folders = download_dataset(archives, tmp_path / "out", keep_archives=False, progress=False)
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == ["tex0.png", "tex1.png"]
    assert not (tmp_path / "out" / "archives" / "Set_HR.zip").exists()

    with pytest.raises(ChecksumError):
        download_dataset([Archive(f"{base}/Set_HR.zip", "0" * 64, None, "Set_HR")], tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / "Set_HR").exists()


def test_extract_refuses_members_outside_the_folder(tmp_path: Path) -> None:
    import zipfile

    from esrgan.training.download import extract

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../escaped.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        extract(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
