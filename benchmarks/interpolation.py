"""Switching alpha on the paper-size generator (16.7 M parameters) on CPU: in place vs rebuilding the model.

The service changes alpha per request; this measures what that costs with `interpolate_into` (one lerp per parameter
into the live model) against the obvious alternative: blend a new state dict and build a fresh RRDBNet from it
(`checkpoints.build_generator`, as any network is built from tensors).

    python benchmarks/interpolation.py [--repeats 10] [--threads 2]
"""

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable

import torch

from esrgan.models.checkpoints import build_generator
from esrgan.models.interpolate import interpolate_into, interpolate_state_dicts
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet, count_parameters, random_state_dict


def timed(methods: dict[str, Callable[[float], object]], alphas: list[float]) -> dict[str, list[float]]:
    """Round-robin over the methods for each alpha, so load from other processes hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for alpha in alphas:
        for name, fn in methods.items():
            start = time.perf_counter()
            fn(alpha)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = RRDBConfig()  # nf=64, nb=23, gc=32, x4: the paper's generator
    psnr, gan = random_state_dict(config, 0, init="paper"), random_state_dict(config, 1, init="paper")
    live = RRDBNet(config).eval()
    alphas = [0.05 + 0.9 * i / max(1, args.repeats - 1) for i in range(args.repeats)]

    def rebuild(alpha: float) -> None:
        build_generator(interpolate_state_dicts(psnr, gan, alpha)).eval()

    def blend_and_load(alpha: float) -> None:
        live.load_state_dict(interpolate_state_dicts(psnr, gan, alpha))

    def in_place(alpha: float) -> None:
        interpolate_into(live, psnr, gan, alpha)

    methods = {
        "rebuild model + load blended state dict (baseline)": rebuild,
        "blend new state dict + load into live model": blend_and_load,
        "interpolate_into live model (in place)": in_place,
    }
    for fn in methods.values():
        fn(0.5)  # warm up allocator and kernels
    results = timed(methods, alphas)

    baseline = next(iter(results.values()))
    print(f"# alpha switch, RRDBNet {count_parameters(live):,} parameters, CPU, {args.threads} threads")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {datetime.date.today()}")
    print(f"# {args.repeats} switches per method (alpha 0.05..0.95, methods interleaved), times in milliseconds")
    print()
    print("| method | median ms | min ms | speed-up (median) | speed-up (min) |")
    print("|---|---:|---:|---:|---:|")
    for name, times in results.items():
        median, best = statistics.median(times), min(times)
        up_median, up_min = statistics.median(baseline) / median, min(baseline) / best
        print(f"| {name} | {median * 1e3:.1f} | {best * 1e3:.1f} | {up_median:.1f}x | {up_min:.1f}x |")


if __name__ == "__main__":
    main()
