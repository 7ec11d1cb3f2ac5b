"""Load on running upscaling services: N uploads, C at a time, each waiting for its image (`wait=true`).

Measures each service at `--url` (repeat it to compare deployments in one run, one after the other) as it is
deployed; starting one is the README's business (`esrgan serve` alone for in-process workers, or with
ESRGAN_REDIS_URL plus `esrgan worker` processes, or `docker compose up`). For each it first runs the jobs one at a
time (the baseline), then C at a time, and reports throughput, p50/p95 latency (upload to last byte of the image),
the ratio against the baseline, and whether every job came back as a decodable image of exactly `scale` times the
input size. The queue mode, the storage (a folder or an object store), the worker count and the network's shape are
read from the service itself (/readyz, /models). Bounded: at most `--jobs` uploads per phase and `--max-seconds` per
phase. Run from the repository root as a module (it imports benchmarks/common.py).

    OMP_NUM_THREADS=1 esrgan serve --port 8000 &                         # in-process, the embedded default pair
    python -m benchmarks.load --url http://127.0.0.1:8000 [--jobs 24] [--concurrency 6] [--size 64] [--model NAME]

The folder against an S3 object store (moto's server standing in for one), 100 small uploads all in flight:

    moto_server -H 127.0.0.1 -p 9000 &
    AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=k AWS_DEFAULT_REGION=us-east-1 python -c \
        "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:9000').create_bucket(Bucket='jobs')"
    OMP_NUM_THREADS=1 esrgan serve --port 8001 &
    AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=k AWS_DEFAULT_REGION=us-east-1 ESRGAN_STORAGE_URL=s3://jobs/esrgan \
        ESRGAN_S3_ENDPOINT_URL=http://127.0.0.1:9000 OMP_NUM_THREADS=1 esrgan serve --port 8002 &
    python -m benchmarks.load --url http://127.0.0.1:8001 --url http://127.0.0.1:8002 --jobs 100 --concurrency 100 \
        --size 32
"""

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from benchmarks.common import machine_line
from esrgan.models.images import ImageError, Picture, read_image, write_image


def random_png(size: int, seed: int) -> bytes:
    """A size x size PNG of noise: the speed of a network depends on the image's size, not its content."""
    pixels = np.random.default_rng(seed).random((size, size, 3), dtype=np.float32)
    return write_image(Picture(pixels=pixels), "png")


def one_job(client: httpx.Client, data: bytes, expected: tuple[int, int], model: str, deadline: float) -> tuple:
    """Upload, wait for the image; (latency s, result is right, what went wrong)."""
    if time.monotonic() > deadline:
        return 0.0, False, "not sent: phase time limit reached"
    start = time.perf_counter()
    params = {"wait": "true", "model": model}
    response = client.post("/upscale", params=params, files={"file": ("in.png", data, "image/png")})
    latency = time.perf_counter() - start
    if response.status_code != 200:
        return latency, False, f"HTTP {response.status_code}: {response.text[:200]}"
    try:
        result = read_image(response.content)
    except ImageError as exc:
        return latency, False, str(exc)
    got = (result.width, result.height)
    return latency, got == expected, f"size {got}"


def phase(url: str, images: list[bytes], expected: tuple[int, int], model: str, concurrency: int, limit: float) -> dict:
    deadline = time.monotonic() + limit
    limits = httpx.Limits(max_connections=concurrency)
    with httpx.Client(base_url=url, timeout=limit, limits=limits, trust_env=False) as client:
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda data: one_job(client, data, expected, model, deadline), images))
        wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results if r[1])
    problems = [r[2] for r in results if not r[1]]
    return {
        "concurrency": concurrency,
        "jobs": len(images),
        "ok": len(latencies),
        "wall": wall,
        "throughput": len(latencies) / wall,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p95": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))] if latencies else float("nan"),
        "problems": problems[:3],
    }


def describe(url: str, model: str | None) -> tuple[dict, dict]:
    """The service's readiness (queue mode, workers) and the pair the jobs will use; exits if it is not ready."""
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        ready = client.get("/readyz")
        if ready.status_code != 200:
            sys.exit(f"{url} is not ready ({ready.status_code}): {ready.json().get('detail', ready.text)}")
        pairs = {m["name"]: m for m in client.get("/models").json() if m["available"]}
    name = model or next(n for n, m in pairs.items() if m["default"])
    if name not in pairs:
        sys.exit(f"{url} offers no available model {name!r} (it has: {', '.join(pairs)})")
    return ready.json(), pairs[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="a running service; repeat to compare (default :8000)")
    parser.add_argument("--model", help="a pair from GET /models (default: the server's default)")
    parser.add_argument("--jobs", type=int, default=24, help="uploads per phase (at most 500)")
    parser.add_argument("--concurrency", type=int, default=6, help="uploads in flight in the loaded phase")
    parser.add_argument("--size", type=int, default=64, help="input images are size x size pixels")
    parser.add_argument("--max-seconds", type=float, default=300, help="time limit of each phase")
    args = parser.parse_args()
    if not 1 <= args.jobs <= 500 or args.concurrency < 1:
        parser.error("--jobs must be in 1..500 and --concurrency at least 1")

    columns = ["mode", "in flight", "jobs", "correct", "wall s", "jobs/s", "vs 1 in flight", "p50 s", "p95 s"]
    header = "| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|"
    rows, failures, shapes = [], [], set()
    for url in args.url or ["http://127.0.0.1:8000"]:
        ready, pair = describe(url, args.model)
        scale, arch = pair["scale"], pair["architecture"]
        shapes.add(f"model {pair['name']} nf={arch['nf']} nb={arch['nb']} gc={arch['gc']}, x{scale}")
        expected = (scale * args.size, scale * args.size)
        images = [random_png(args.size, seed=i) for i in range(args.jobs)]
        run = [url, images, expected, pair["name"]]
        phase(url, images[:2], expected, pair["name"], 1, args.max_seconds)  # warm-up: first-use costs out of the way
        base = phase(*run, 1, args.max_seconds)
        loaded = phase(*run, args.concurrency, args.max_seconds)
        workers = f"{ready['workers']} worker{'s' if ready['workers'] != 1 else ''}"
        mode = f"{ready['queue']}, {ready.get('storage', 'directory')} storage ({workers})"
        for r in (base, loaded):
            rows.append(
                f"| {mode} | {r['concurrency']} | {r['jobs']} | {r['ok']}/{r['jobs']} | {r['wall']:.2f} | "
                f"{r['throughput']:.2f} | {r['throughput'] / base['throughput']:.2f}x | "
                f"{r['p50']:.3f} | {r['p95']:.3f} |"
            )
        failures += [(url, r["concurrency"], r["problems"]) for r in (base, loaded) if r["ok"] != r["jobs"]]

    print(f"# service load: {machine_line()}; {'; '.join(sorted(shapes))}, {args.size}x{args.size} PNG uploads")
    print(header, *rows, sep="\n")
    if failures:
        print(f"FAILED jobs: {failures}")
        sys.exit(1)
    print("every job finished with a correct result (decodable PNG, exactly the model's scale times the input size)")


if __name__ == "__main__":
    main()
