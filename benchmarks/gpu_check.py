"""The GPU path proven the moment a GPU is lent (issue 18): one command, every part time-boxed, facts written down.

    python -m benchmarks.gpu_check [--device cuda|cpu] [--quick] [--out DIR] [--steps NAME,...] [--budgets NAME=S,...]

Run from the repository root (on a lent device machine through benchmarks/device_run.sh: benchmarks/README.md).
Six steps; 1-5 each run in a fresh process with a time budget (a step stops starting checks it has no time left for,
and is killed at its budget; either way it is reported partial with what it measured, and the next step still runs;
a step whose process dies, a CUDA error say, is reported failed and cannot poison the next one):
  1. environment: GPU, driver, torch/CUDA/cuDNN, free memory, the 3x3 conv 64->64 rate per precision;
  2. correctness: `pytest -m cuda`, fp16/bf16 against fp32 (embedded pair, paper-size random network), the fp16
     overflow fallback and the out-of-memory back-off forced;
  3. throughput: the paper-size network on 1280x720 and 640x480 through our engine (defaults, tile/batch choices,
     cudnn.benchmark, torch.compile) against Real-ESRGAN's whole-image and tiled ways, the embedded pair too;
  4. training: s/iter of both stages for both networks at batch 16 / HR 128 in bf16, a falling loss, a resume;
  5. service: `esrgan serve` on the device, uploads over HTTP checked against the engine, latency, GPU utilisation;
  6. report: the table printed at the end, DIR/gpu_check.json and the whole log, DIR/gpu_check.log.
On CUDA the budgets add up to 470 s (under the device's 8 minutes for this check). `--device cpu --quick` runs every
step's code on tiny sizes, in under a minute; tests/test_gpu_check.py runs it so that the check cannot rot.
DIR defaults to $OUT where that is set (the device machine's folder that comes back), else test-artifacts/gpu_check.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from benchmarks.gpu import correctness, environment, service, throughput, training
from benchmarks.gpu.base import OUT_OF_TIME, REPO, Recorder

MARGIN_S = 5  # a step stops starting checks this long before its budget, so the hard kill is a last resort


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    run: Callable[[Recorder], None]
    budget_s: int  # on CUDA
    quick_budget_s: int  # --quick on a (possibly busy) CPU

    def budget(self, quick: bool) -> int:
        return self.quick_budget_s if quick else self.budget_s


STEPS = [
    # Quick budgets are caps, not estimates: the quick run takes well under a minute on an idle 2-core CPU, but CI and
    # a session's tests share those cores, and a step cut short there would fail the suite for nothing.
    Step("environment", "1. environment", environment.run, 25, 60),
    Step("correctness", "2. correctness", correctness.run, 75, 90),
    Step("throughput", "3. throughput", throughput.run, 180, 120),
    Step("training", "4. training", training.run, 125, 120),
    Step("service", "5. service", service.run, 65, 120),
]


class Log:
    """Everything the check prints, to stdout (the device's output tail) and to DIR/gpu_check.log."""

    def __init__(self, path: Path) -> None:
        self.file: TextIO = path.open("w")
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.file.write(text)
            self.file.flush()


def run_step(step: Step, budget: float, args: argparse.Namespace, out: Path, partial: Path, log: Log) -> dict[str, Any]:
    """The step in a child process of its own session, killed (with everything it started) at its budget."""
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--child", step.name, "--device", args.device]
    cmd += ["--out", str(out), "--partial", str(partial), "--child-budget", str(budget - min(MARGIN_S, budget / 4))]
    cmd += ["--quick"] if args.quick else []
    log.write(f"\n=== {step.title} (budget {budget} s) ===\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    child = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    tail: list[str] = []

    def relay() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            log.write(f"  {line}")
            tail[:] = [*tail[-19:], line.rstrip()]

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    killed = False
    try:
        child.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        killed = True
        os.killpg(child.pid, signal.SIGKILL)  # its own session: DataLoader workers and `esrgan serve` go too
        child.wait()
    reader.join(timeout=10)
    checks = json.loads(partial.read_text())["checks"] if partial.exists() else []
    result: dict[str, Any] = {"name": step.name, "title": step.title, "budget_s": budget}
    result.update(seconds=round(time.monotonic() - started, 1), checks=checks)
    statuses = [c["status"] for c in checks]
    if killed:
        result.update(status="partial", reason=f"killed at its {budget} s budget; the checks listed ran before")
    elif child.returncode != 0:
        result.update(status="failed", error=f"exit {child.returncode}: " + " | ".join(tail[-6:]))
    elif "failed" in statuses:
        result.update(status="failed", error="; ".join(c["check"] for c in checks if c["status"] == "failed"))
    elif any(c.get("reason", "").startswith(OUT_OF_TIME) for c in checks):
        result.update(status="partial", reason="checks left out for lack of time")
    elif statuses and all(s == "skipped" for s in statuses):
        result.update(status="skipped", reason="; ".join(sorted({c["reason"] for c in checks})))
    else:
        result["status"] = "ok"
    log.write(f"=== {step.title}: {result['status']} in {result['seconds']} s\n")
    return result


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return str(value).replace("|", "/").replace("\n", " ")


def table(report: dict[str, Any]) -> str:
    """The steps, then every check with its figures, as Markdown tables (ready for benchmarks/RESULTS.md)."""
    lines = [
        f"GPU check (issue 18): {report['device']}{' --quick' if report['quick'] else ''}, {report['machine']}, "
        f"{report['started']}, {report['seconds']} s",
        "",
        "| step | status | seconds | budget s | why |",
        "|---|---|---|---|---|",
    ]
    for s in report["steps"]:
        why = s.get("reason") or s.get("error") or ""
        lines.append(f"| {s['title']} | {s['status']} | {s['seconds']} | {s['budget_s']} | {cell(why)} |")
    lines += ["", "| step | check | status | s | figures |", "|---|---|---|---|---|"]
    for s in report["steps"]:
        for c in s.get("checks", []):
            figures = {k: v for k, v in c.items() if k not in ("check", "status", "seconds")}
            shown = "; ".join(f"{k}={cell(v)}" for k, v in figures.items() if v is not None)
            lines.append(f"| {s['name']} | {c['check']} | {c['status']} | {c['seconds']:.1f} | {shown} |")
    return "\n".join(lines) + "\n"


def machine(report: dict[str, Any]) -> str:
    """One phrase for the table's title, from the environment step's figures."""
    for s in report["steps"]:
        if s["name"] == "environment":
            figures = {c["check"]: c for c in s["checks"]}
            gpu = figures.get("GPU", {}).get("name") or figures.get("versions", {}).get("cpu", "?")
            driver = figures.get("nvidia-smi", {}).get("driver_version")
            torch_version = figures.get("versions", {}).get("torch", "?")
            return f"{gpu}{f', driver {driver}' if driver else ''}, torch {torch_version}"
    return "machine not recorded"


def write_json(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when PyTorch sees a GPU, else cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: every step's code in under a minute")
    parser.add_argument("--out", type=Path, help="results folder [default: $OUT, else test-artifacts/gpu_check]")
    parser.add_argument("--steps", help="comma-separated step names to run [default: all]")
    parser.add_argument("--budgets", default="", help="seconds per step instead of the defaults, e.g. throughput=200")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--partial", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-budget", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but PyTorch sees no CUDA GPU here")
    out = args.out or Path(os.environ.get("OUT") or REPO / "test-artifacts" / "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        return child(args, out)
    names = args.steps.split(",") if args.steps else [s.name for s in STEPS]
    budgets = {s.name: float(s.budget(args.quick)) for s in STEPS}
    try:
        given = {
            name: float(seconds)
            for name, _, seconds in (item.partition("=") for item in args.budgets.split(",") if item)
        }
    except ValueError:
        parser.error(f"--budgets takes NAME=SECONDS,... (got {args.budgets!r})")
    unknown = (set(names) | set(given)) - set(budgets)
    if unknown or any(seconds <= 0 for seconds in given.values()):
        parser.error(f"unknown steps {sorted(unknown)} or a budget <= 0; the steps are {', '.join(budgets)}")
    budgets.update(given)

    log = Log(out / "gpu_check.log")
    started = time.monotonic()
    report: dict[str, Any] = {
        "issue": 18,
        "device": args.device,
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.gpu_check", *(argv or sys.argv[1:])]),
        "steps": [],
    }
    log.write(f"GPU check: device {args.device}, quick {args.quick}, results in {out}\n")
    write_json(out / "gpu_check.json", report)  # no step reads a stale report of an earlier run
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for step in (s for s in STEPS if s.name in names):
            partial = Path(tmp) / f"{step.name}.json"
            report["steps"].append(run_step(step, budgets[step.name], args, out, partial, log))
            report["seconds"] = round(time.monotonic() - started, 1)
            write_json(out / "gpu_check.json", report)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"] = machine(report)
    files = ["gpu_check.json", "gpu_check.log"]
    report["steps"].append(
        {"name": "report", "title": "6. report", "status": "ok", "seconds": 0, "budget_s": 0, "files": files}
    )
    log.write("\n" + table(report))
    write_json(out / "gpu_check.json", report)
    return 0 if all(s["status"] in ("ok", "skipped") for s in report["steps"]) else 1


def child(args: argparse.Namespace, out: Path) -> int:
    """One step, inside the process run_step started; its checks land in --partial as they finish."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    step = next(s for s in STEPS if s.name == args.child)
    state = out / "gpu_check.json"
    earlier = json.loads(state.read_text()) if state.exists() else {}
    step.run(Recorder(step.name, args.partial, args.child_budget, args.device, args.quick, earlier))
    return 0


if __name__ == "__main__":
    sys.exit(main())
