"""Schemathesis, a property-based API fuzzer, against a real `esrgan serve` from its own /openapi.json, with and
without the API key: every operation gets generated requests (a bounded number, seconds in all), and none may answer
a server error, a status code the schema does not document, or a body or content type other than documented."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from service_helpers import make_pair, service_env

KEY = "fuzz-test-key-0123456789abcdef"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SCHEMATHESIS = shutil.which("st", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed (the test extra has it)")


@pytest.fixture(scope="module")
def env(tmp: Path) -> dict[str, str]:
    """Small limits, so generated uploads that are images run as tiny jobs and the rest are refused early."""
    weights = make_pair(tmp / "weights", "tiny")
    return service_env(tmp, weights, api_key=KEY, max_pixels=4096, max_upload_bytes=100_000, wait_timeout=5)


@pytest.mark.parametrize("with_key", [False, True], ids=["without key", "with key"])
def test_no_server_errors_and_no_undocumented_answers(client: httpx.Client, tmp: Path, with_key: bool) -> None:
    bounded = ["--max-examples", "25", "--seed", "15", "--phases", "examples,fuzzing", "--request-timeout", "20"]
    headers = ["-H", f"X-API-Key: {KEY}"] if with_key else []
    run = subprocess.run(
        [SCHEMATHESIS, "run", str(client.base_url.join("/openapi.json")), "--checks", CHECKS, *bounded, *headers],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp,
    )
    summary = run.stdout[-4000:] + run.stderr[-1000:]
    assert run.returncode == 0, summary
    counts = re.search(r"(\d+) generated, (\d+) passed\n", summary)
    assert counts and counts[1] == counts[2] and int(counts[1]) >= 100, summary  # every generated case passed
