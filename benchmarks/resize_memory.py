"""Peak memory and time of the output-scale resize (models/resize.py) on a large network result.

Each case runs in a fresh process: it builds a full-size result laid out as the engine returns it (an H x W x C view
of a C x H x W array, uint8 or uint16), reads the peak RSS, resizes, and reads the peak again; the difference is what
the resize needs beyond the result it is given. The same is measured for the obvious alternative, Pillow on a
contiguous H x W x C copy. Run: `.venv/bin/python -m benchmarks.resize_memory`.
"""

import json
import resource
import subprocess
import sys
import time

import numpy as np

CASES = [  # (name, output width, height, channels, bits, target width, height)
    ("x4 -> x2, 24 MP RGB 8-bit", 6000, 4000, 3, 8, 3000, 2000),
    ("x4 -> x3, 12 MP RGBA 16-bit", 4000, 3000, 4, 16, 3000, 2250),
]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(case: int, method: str) -> dict:
    from PIL import Image

    from esrgan.models.images import Picture
    from esrgan.models.resize import resize

    _, w, h, c, bits, tw, th = CASES[case]
    dtype = np.uint16 if bits == 16 else np.uint8
    planes = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (c, h, w), dtype=dtype)
    picture = Picture(pixels=planes.transpose(1, 2, 0), bits=bits)
    before = peak_mb()
    started = time.perf_counter()
    if method == "ours":
        out = resize(picture, tw, th).pixels
    else:  # Pillow on a contiguous copy (8-bit only: Pillow has no 16-bit colour mode)
        out = np.asarray(Image.fromarray(np.ascontiguousarray(picture.pixels)).resize((tw, th), Image.LANCZOS))
    seconds = time.perf_counter() - started
    assert out.shape == (th, tw, c)
    return {"input_mb": planes.nbytes / 2**20, "extra_peak_mb": peak_mb() - before, "seconds": seconds}


def main() -> None:
    if len(sys.argv) == 3:  # one measurement, in this fresh process
        print(json.dumps(measure(int(sys.argv[1]), sys.argv[2])))
        return
    print("| case | method | result MB | extra peak MB | seconds |")
    print("|---|---|---:|---:|---:|")
    for case, (name, _, _, _, bits, _, _) in enumerate(CASES):
        for method in ("ours", "pillow-copy") if bits == 8 else ("ours",):
            run = [sys.executable, "-m", "benchmarks.resize_memory", str(case), method]
            row = json.loads(subprocess.run(run, check=True, capture_output=True).stdout)
            print(f"| {name} | {method} | {row['input_mb']:.0f} | {row['extra_peak_mb']:.0f} | {row['seconds']:.2f} |")


if __name__ == "__main__":
    main()
