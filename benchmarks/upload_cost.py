"""What uploads that cost far more than their size do to a running API: N flat 16-bit RGBA PNGs (about 35 KB each at
2000x2000, 128 MB as float32 pixels) while /healthz is polled, with the API's own memory and CPU read from /proc.

Run it against an API in Redis mode with no worker (so every byte and second measured is the API's), on this machine
(it reads /proc/PID of the API process), from the repository root as a module:

    redis-server --port 6399 --save '' &
    ESRGAN_REDIS_URL=redis://127.0.0.1:6399/0 esrgan serve --port 8000 &
    python -m benchmarks.upload_cost --url http://127.0.0.1:8000 --pid $(pgrep -f 'esrgan serve' | head -1)

Prints the API's resident memory (and its peak so far) before, its peak (VmHWM) after, the API CPU seconds per upload
and the slowest /healthz meanwhile; the jobs it queued are cancelled at the end (DELETE), so no worker ever runs them.
"""

import argparse
import io
import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import png


def flat_16_bit_rgba(side: int = 2000) -> bytes:
    """A flat 16-bit RGBA PNG at zlib level 9, as a hostile client would make it: about 35 KB on the wire at 2000 px,
    128 MB as float32 pixels (our own writer's level 1 makes 145 KB). tests/test_hardening_redis.py sends it too."""
    buf = io.BytesIO()
    png.Writer(side, side, greyscale=False, alpha=True, bitdepth=16, compression=9).write(
        buf, np.full((side, side * 4), 30000, np.uint16)
    )
    return buf.getvalue()


def status_kib(pid: int, field: str) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(f"{field}:"))
    return int(line.split()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def poll_health(url: str, done: threading.Event, latencies: list[float]) -> None:
    """GET /healthz every 50 ms until `done`, keeping each answer's latency (what a load balancer would see)."""
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
        while not done.wait(0.05):
            started = time.monotonic()
            client.get("/healthz")
            latencies.append(time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, required=True, help="the API process (its /proc entry is read)")
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--side", type=int, default=2000)
    parser.add_argument("--key", default=None, help="the API key, if the server has one")
    args = parser.parse_args()
    data = flat_16_bit_rgba(args.side)
    headers = {"X-API-Key": args.key} if args.key else {}
    with httpx.Client(base_url=args.url, timeout=120, headers=headers, trust_env=False) as client:
        client.get("/healthz")
        rss, hwm, cpu = status_kib(args.pid, "VmRSS"), status_kib(args.pid, "VmHWM"), cpu_seconds(args.pid)
        ids: list[str] = []
        done = threading.Event()
        health: list[float] = []
        poller = threading.Thread(target=poll_health, args=(args.url, done, health))
        poller.start()
        for i in range(args.uploads):
            answer = client.post("/upscale", files={"file": (f"flat{i}.png", data, "image/png")})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
        done.set()
        poller.join()
        peak, spent = status_kib(args.pid, "VmHWM"), cpu_seconds(args.pid) - cpu
        for job_id in ids:
            client.delete(f"/jobs/{job_id}")
    print(
        f"{args.uploads} uploads of a flat {args.side}x{args.side} 16-bit RGBA PNG ({len(data) / 1024:.0f} KiB): "
        f"API RSS {rss / 1024:.0f} MiB (peak so far {hwm / 1024:.0f}) before, peak {peak / 1024:.0f} MiB after, "
        f"{spent / args.uploads:.2f} s API CPU per upload, "
        f"slowest of {len(health)} /healthz {max(health, default=0):.2f} s"
    )


if __name__ == "__main__":
    main()
