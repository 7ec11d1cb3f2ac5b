"""GET /jobs/archive: the streamed zip (valid, byte-exact, written while it is read, never a whole result in memory),
and the route over real HTTP (`esrgan serve`, in-process queue) with its refusals."""

import io
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from service_helpers import finished_job, make_pair, png_bytes, service_env, submit, wait_job, wait_until

from esrgan.service.archive import Member, unique_names, zip_stream
from esrgan.service.storage import CHUNK, Blob


def test_pieces_go_out_while_the_members_are_read() -> None:
    data = [os.urandom(5 * CHUNK + 17), os.urandom(3)]
    read = []  # (member, chunk) pairs, in the order the stream consumed them

    def blob(n: int) -> Blob:
        def chunks():
            for i in range(0, len(data[n]), CHUNK):
                read.append((n, i // CHUNK))
                yield data[n][i : i + CHUNK]

        return Blob(size=len(data[n]), chunks=chunks())

    when = datetime(2024, 5, 6, 7, 8, 10, tzinfo=UTC)
    stream = zip_stream([Member("a.png", when, lambda: blob(0)), Member("b.png", when, lambda: blob(1))])
    first = next(stream)
    assert read == [(0, 0)] and len(first) >= CHUNK  # the first piece left after reading one chunk
    pieces = [first, *stream]
    assert max(len(p) for p in pieces) < 2 * CHUNK
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as archive:
        assert archive.testzip() is None
        assert [archive.read(n) for n in ("a.png", "b.png")] == data
        assert archive.getinfo("a.png").date_time == (2024, 5, 6, 7, 8, 10)


def test_unique_names_number_the_repeats() -> None:
    assert unique_names(["a_x4.png", "a_x4.png", "b.jpg", "a_x4.png", "a_x4-2.png"]) == [
        "a_x4.png",
        "a_x4-2.png",
        "b.jpg",
        "a_x4-3.png",
        "a_x4-2-2.png",
    ]


ARCHIVE_MAX = 4


@pytest.fixture(scope="module")
def env(tmp: Path) -> dict[str, str]:
    """A tiny default pair, a larger one whose jobs run long enough to be seen unfinished, a small archive limit."""
    weights = make_pair(tmp / "weights", "tiny") + "," + make_pair(tmp / "weights", "slow", nf=32, nb=2, gc=16)
    return service_env(tmp, weights, archive_max_jobs=ARCHIVE_MAX)


def test_archive_holds_each_result_under_its_download_name(client) -> None:
    jobs = [
        finished_job(client, png_bytes(12, 8, seed=10), "holiday.png"),
        finished_job(client, png_bytes(12, 8, seed=11), "holiday.png", scale=2),
        finished_job(client, png_bytes(9, 9, seed=12), "holiday.png", scale=2, format="webp"),
        finished_job(client, png_bytes(16, 8, seed=13), "beach.png", width=40),
    ]
    ids = [job["id"] for job in jobs]
    response = client.get("/jobs/archive", params={"ids": ",".join([*ids, ids[0]])})  # a repeated id counts once
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="esrgan-results.zip"' in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == ["holiday_x4.png", "holiday_x2.png", "holiday_x2.webp", "beach_40x20.png"]
        for name, job in zip(names, jobs, strict=True):
            assert archive.read(name) == client.get(f"/jobs/{job['id']}/result").content
            assert archive.getinfo(name).compress_type == zipfile.ZIP_STORED


def test_archive_of_two_uploads_with_one_name_keeps_both(client) -> None:
    jobs = [finished_job(client, png_bytes(8, 8, seed=s), "same.png") for s in (20, 21)]
    response = client.get("/jobs/archive", params={"ids": ",".join(job["id"] for job in jobs)})
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["same_x4.png", "same_x4-2.png"]
        assert archive.read("same_x4-2.png") == client.get(f"/jobs/{jobs[1]['id']}/result").content


def test_archive_refusals(client) -> None:
    done = finished_job(client, png_bytes(8, 8, seed=30))["id"]

    def refused(ids: str, status: int, words: str) -> None:
        response = client.get("/jobs/archive", params={"ids": ids})
        assert response.status_code == status, response.text
        assert words in response.json()["detail"], response.json()

    refused("", 422, "Give the ids of finished jobs")
    refused(" , ,", 422, "Give the ids of finished jobs")
    refused(f"{done},../../etc/passwd", 422, "'../../etc/passwd' is not a job id")
    refused(done.upper(), 422, "is not a job id")
    refused("0" * 32, 404, f"No job {'0' * 32!r}")
    many = ",".join(f"{n:032x}" for n in range(ARCHIVE_MAX + 1))
    refused(many, 422, f"An archive holds at most {ARCHIVE_MAX} jobs on this server; {ARCHIVE_MAX + 1} were asked for")
    assert client.get("/jobs/archive").status_code == 422  # no ids at all

    # A job still running, one waiting behind it, and a cancelled one: none of them is finished.
    running = submit(client, png_bytes(96, 96, seed=31), model="slow", tile=16)["id"]
    wait_until(lambda: client.get(f"/jobs/{running}").json()["state"] == "started", 30, "the slow job to start")
    waiting = submit(client, png_bytes(8, 8, seed=32))["id"]
    refused(f"{done},{running}", 409, f"Job {running} is started; an archive takes finished jobs only.")
    refused(f"{waiting},{done}", 409, f"Job {waiting} is queued")
    assert client.delete(f"/jobs/{waiting}").status_code == 202
    assert client.delete(f"/jobs/{running}").status_code == 202
    assert wait_job(client, running)["state"] == "cancelled"
    refused(f"{done},{running}", 409, f"Job {running} is cancelled")

    # A finished job whose result was removed is gone from the queue too: 404, naming it.
    assert client.delete(f"/jobs/{done}").status_code == 204
    refused(done, 404, f"No job {done!r}")
