"""A job queued in Redis by an older API (before the output-scale fields) is still shown by the new one."""

from rq.job import Job

from esrgan.service.job import JobInfo, JobState, Size
from esrgan.service.redis_queue import RedisJobs
from esrgan.service.settings import Settings


def test_a_job_without_the_newer_optional_fields_is_still_found(tmp, redis_url) -> None:
    jobs = RedisJobs(Settings(storage_dir=tmp / "storage", redis_url=redis_url))
    job_id = "d" * 32
    info = JobInfo(
        id=job_id, state=JobState.QUEUED, model="tiny", alpha=0.5, format="png", filename="x_x4.png",
        input=Size(width=8, height=8), output=Size(width=32, height=32),
    )  # fmt: skip
    jobs.submit(job_id, info)
    job = Job.fetch(job_id, connection=jobs.redis)
    for key in ("scale", "width", "height"):  # what an older API never stored
        del job.meta[key]
    job.save_meta()
    found = jobs.get(job_id)
    assert found is not None and found.state == JobState.QUEUED
    assert (found.scale, found.width, found.height) == (None, None, None) and found.output.width == 32
    jobs.close()
