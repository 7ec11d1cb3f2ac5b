"""Where the tests find what lives beside the checkout: `../shared/` (Set5/Set14), as in CI's fresh clone."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ESRGAN_SHARED", REPO.parent / "shared"))
SHARED_DATASETS = SHARED / "datasets"
