"""Load on the upscaling service over loopback: N uploads, C at a time, each waiting for its image (`wait=true`).

Starts its own `esrgan serve` on 127.0.0.1 (in-process workers), and with `--mode redis` or `both` also a throwaway
redis-server and `--workers` `esrgan worker` processes. Each mode first runs the same jobs one at a time (the
baseline), then C at a time, and reports throughput, p50/p95 latency (upload to last byte of the image), the ratio
against the baseline, and whether every job came back as a decodable image of exactly 4x the input size.
Bounded: at most `--jobs` uploads per phase and `--max-seconds` per phase.

    python benchmarks/load.py [--mode both] [--jobs 24] [--concurrency 6] [--size 64] [--workers 2]
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from service_helpers import (  # shared with the service tests: redis-server, processes, images
    api_server,
    image_size,
    make_pair,
    png_bytes,
    redis_server,
    service_env,
    start_worker,
    wait_until,
)


def one_job(client: httpx.Client, data: bytes, size: int, deadline: float) -> tuple[float, bool, str]:
    """Upload, wait for the image; (latency s, result is right, what went wrong)."""
    if time.monotonic() > deadline:
        return 0.0, False, "not sent: phase time limit reached"
    start = time.perf_counter()
    response = client.post("/upscale", params={"wait": "true"}, files={"file": ("in.png", data, "image/png")})
    latency = time.perf_counter() - start
    if response.status_code != 200:
        return latency, False, f"HTTP {response.status_code}: {response.text[:200]}"
    got = image_size(response.content)
    return latency, got == (4 * size, 4 * size), f"size {got}"


def phase(url: str, images: list[bytes], size: int, concurrency: int, max_seconds: float) -> dict:
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency)
    with httpx.Client(base_url=url, timeout=max_seconds, limits=limits, trust_env=False) as client:
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda data: one_job(client, data, size, deadline), images))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["local", "redis", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=24, help="uploads per phase (at most 500)")
    parser.add_argument("--concurrency", type=int, default=6, help="uploads in flight in the loaded phase")
    parser.add_argument("--size", type=int, default=64, help="input images are size x size pixels")
    parser.add_argument("--workers", type=int, default=2, help="`esrgan worker` processes in redis mode")
    parser.add_argument("--arch", default="16,2,8", help="nf,nb,gc of the random model pair used")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each serving/worker process")
    parser.add_argument("--max-seconds", type=float, default=300, help="time limit of each phase")
    args = parser.parse_args()
    if not 1 <= args.jobs <= 500 or args.concurrency < 1:
        parser.error("--jobs must be in 1..500 and --concurrency at least 1")

    nf, nb, gc = (int(v) for v in args.arch.split(","))
    images = [png_bytes(args.size, args.size, seed=i) for i in range(args.jobs)]
    modes = ["local", "redis"] if args.mode == "both" else [args.mode]
    rows = []
    with tempfile.TemporaryDirectory(prefix="esrgan-load-") as name:
        tmp = Path(name)
        weights = make_pair(tmp / "weights", "bench", nf=nf, nb=nb, gc=gc)
        for mode in modes:
            with ExitStack() as stack:
                settings = {"storage_dir": tmp / mode}
                if mode == "redis":
                    settings["redis_url"] = stack.enter_context(redis_server(tmp))
                env = service_env(tmp, weights, **settings)
                env["OMP_NUM_THREADS"] = str(args.threads)
                if mode == "redis":
                    workers = [start_worker(env, tmp / f"w{i}.log") for i in range(args.workers)]
                    stack.callback(lambda ws=workers: [w.stop() for w in ws])
                client = stack.enter_context(api_server(env, tmp / f"serve-{mode}.log", ready=False))
                want = args.workers if mode == "redis" else 1
                wait_until(lambda c=client, n=want: c.get("/readyz").json().get("workers") == n, 120, "workers")
                url = str(client.base_url)
                assert client.base_url.host == "127.0.0.1"
                phase(url, images[:2], args.size, 1, args.max_seconds)  # warm-up: first-use costs out of the way
                base = phase(url, images, args.size, 1, args.max_seconds)
                loaded = phase(url, images, args.size, args.concurrency, args.max_seconds)
                workers_label = f"{args.workers} worker processes" if mode == "redis" else "1 in-process thread"
                for result in (base, loaded):
                    rows.append(
                        {
                            "mode": f"{mode} ({workers_label})",
                            **result,
                            "ratio": result["throughput"] / base["throughput"],
                        }
                    )

    print(
        f"# service load, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {args.threads} torch thread(s) per process, "
        f"model nf={nf} nb={nb} gc={gc}, {args.size}x{args.size} -> x4 PNG"
    )
    print("| mode | in flight | jobs | correct | wall s | jobs/s | vs 1 in flight | p50 s | p95 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['concurrency']} | {r['jobs']} | {r['ok']}/{r['jobs']} | {r['wall']:.2f} | "
            f"{r['throughput']:.2f} | {r['ratio']:.2f}x | {r['p50']:.3f} | {r['p95']:.3f} |"
        )
    failures = [(r["mode"], r["concurrency"], r["problems"]) for r in rows if r["ok"] != r["jobs"]]
    if failures:
        print(f"FAILED jobs: {failures}")
        sys.exit(1)
    print("every job finished with a correct result (decodable PNG, exactly 4x the input size)")


if __name__ == "__main__":
    main()
