"""The GPU check (benchmarks/gpu_check.py) in its CPU quick mode, as a real subprocess: every step's code runs here
as it will on a lent GPU, so the check is known to work before one is lent; and a step past its budget is killed,
reported partial, and the next step still runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

STEPS = ["environment", "correctness", "throughput", "training", "service", "report"]


def gpu_check(out: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--quick", "--out", str(out), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path, dict]:
    out = tmp_path_factory.mktemp("gpu_check")
    done = gpu_check(out)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return done, out, json.loads((out / "gpu_check.json").read_text())


def checks(report: dict) -> dict[str, dict]:
    return {c["check"]: c for s in report["steps"] for c in s.get("checks", [])}


def test_every_step_is_ok_or_skipped_with_a_reason(quick):
    _, _, report = quick
    assert [s["name"] for s in report["steps"]] == STEPS
    for step in report["steps"]:
        assert step["status"] in ("ok", "skipped"), step
        assert step["status"] == "ok" or step["reason"], step
        for check in step.get("checks", []):
            assert check["status"] in ("ok", "skipped"), check
            if check["status"] == "skipped":
                assert check["reason"] and not check["reason"].startswith("out of time"), check
    assert report["device"] == "cpu" and report["quick"] is True


def test_the_table_is_printed_and_the_log_kept(quick):
    done, out, report = quick
    for step in report["steps"]:
        assert f"| {step['title']} | {step['status']} |" in done.stdout
    assert "| throughput | paper-size, ours, defaults, 40x24 | ok |" in done.stdout
    log = (out / "gpu_check.log").read_text()
    assert "| 5. service | ok |" in log and "[training] resume from a checkpoint" in log


def test_the_checks_measured_what_they_say(quick):
    by_name = checks(quick[2])
    assert by_name["conv 3x3 64->64 rate"]["fp32_tflops"] > 0
    defaults = by_name["paper-size, ours, defaults, 40x24"]
    assert defaults["out_mp_s"] > 0 and defaults["of_conv_rate"] > 0
    oom = by_name["OOM back-off, simulated: batches and tiles refused, split"]
    assert oom["refused_calls"] > 0 and 0 < oom["largest_ran"] <= oom["tile"] // 2
    falls = next(c for name, c in by_name.items() if name.startswith("embedded stage 1 from scratch"))
    assert falls["last_l1"] < falls["first_l1"]
    resume = by_name["resume from a checkpoint gives the same next step"]
    assert resume["straight_next"] == resume["resumed_next"] and resume["first_steps_equal"]
    served = by_name["every served result against the engine run directly"]
    assert served["compared"] == 3 and served["identical"] == 3  # on the CPU, bit for bit


def test_a_step_past_its_budget_is_killed_and_the_next_still_runs(tmp_path):
    done = gpu_check(tmp_path, "--steps", "environment,correctness", "--budgets", "environment=1", timeout=300)
    assert done.returncode == 1, done.stdout[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    first, second = report["steps"][:2]
    assert first["name"] == "environment" and first["status"] == "partial" and first["seconds"] < 15
    assert second["name"] == "correctness" and second["status"] == "ok"
    assert "| 1. environment | partial |" in done.stdout


def test_the_cuda_budgets_add_up_to_at_most_eight_minutes():
    code = "from benchmarks.gpu_check import STEPS; print(sum(s.budget(quick=False) for s in STEPS))"
    total = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert 0 < int(total) <= 8 * 60


def test_bad_arguments_are_refused_with_the_step_names(tmp_path):
    done = gpu_check(tmp_path, "--steps", "warp-drive", timeout=60)
    assert done.returncode == 2 and "the steps are environment, correctness" in done.stderr
