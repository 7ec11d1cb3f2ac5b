"""The installed product has one import name: build the real wheel and read what it would put into site-packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

from paths import REPO


def test_the_wheel_installs_exactly_one_top_level_name(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path, REPO],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("esrgan_service-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"esrgan"}
    for module in (
        "esrgan/__init__.py",
        "esrgan/cli.py",
        "esrgan/models/engine.py",
        "esrgan/service/app.py",
        "esrgan/service/routes/upscale.py",
        "esrgan/training/train.py",
        "esrgan/web/templates/index.html",
        "esrgan/models/weights/esrgan_compact_x4_psnr.safetensors",
    ):
        assert module in names
    assert not any(name.startswith(("esrgan/tests/", "esrgan/benchmarks/")) for name in names)
    # candidate weights (MODEL_CARD.md) stay in the repository for the next training session, not in the product
    assert (REPO / "models/weights/candidates").is_dir()
    assert not any(name.startswith("esrgan/models/weights/candidates/") for name in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "esrgan = esrgan.cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()
