"""Step 1, environment: what machine this is, and the measured rate of the 3x3 conv 64->64 that makes up most of
RRDBNet's work, in each precision: the ceiling the throughput step's figures are read against."""

import os
import platform
import shutil
import subprocess
import sys
from typing import Any

import numpy as np
import torch

from benchmarks.common import conv_rate_gflops
from benchmarks.gpu.base import Recorder, Skip

CONV_CHECK = "conv 3x3 64->64 rate"
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def versions() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load": round(os.getloadavg()[0], 2),
    }


def gpu(rec: Recorder) -> dict[str, Any]:
    if not rec.cuda:
        raise Skip("no CUDA: this run is on the CPU")
    props = torch.cuda.get_device_properties(rec.device)
    free, total = torch.cuda.mem_get_info(rec.device)
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "total_gib": round(total / 2**30, 1),
        "free_gib": round(free / 2**30, 1),
        "conv_tf32": torch.backends.cudnn.allow_tf32,  # fp32 convolutions run as TF32 on tensor cores when true
    }


def nvidia_smi() -> dict[str, Any]:
    if shutil.which("nvidia-smi") is None:
        raise Skip("nvidia-smi is not on the PATH")
    fields = "name,driver_version,memory.total,memory.used,clocks.max.sm,power.limit"
    line = subprocess.run(
        ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout.splitlines()[0]
    return dict(zip(fields.replace(".", "_").split(","), (v.strip() for v in line.split(",")), strict=True))


def conv_rates(rec: Recorder) -> dict[str, Any]:
    """TFLOP/s of the conv in channels_last (the engine's layout), fp16 also in NCHW (Real-ESRGAN's)."""
    if rec.cuda:
        shape, repeats, names = (4, 64, 1024, 1024), 10, ("fp16", "bf16", "fp32")
    else:
        shape, repeats, names = (1, 64, 64, 64), 3, ("fp32", "bf16")
    rates: dict[str, Any] = {"shape": "x".join(map(str, shape))}
    for name in names:
        rates[f"{name}_tflops"] = conv_rate_gflops(rec.device, DTYPES[name], shape, repeats=repeats) / 1e3
    if rec.cuda:
        nchw = conv_rate_gflops(rec.device, torch.float16, shape, torch.contiguous_format, repeats)
        rates["fp16_nchw_tflops"] = nchw / 1e3
    return rates


def run(rec: Recorder) -> None:
    rec.check("versions", versions)
    rec.check("GPU", gpu, rec)
    rec.check("nvidia-smi", nvidia_smi)
    rec.check(CONV_CHECK, conv_rates, rec)
