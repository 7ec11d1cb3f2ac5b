"""Service commands: `esrgan serve` (the HTTP API, with in-process workers unless ESRGAN_REDIS_URL is set) and
`esrgan worker` (an RQ worker on ESRGAN_REDIS_URL). Everything else is configured by ESRGAN_* settings."""

import typer

app = typer.Typer()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, help="TCP port"),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Run the upscaling API (and the web UI). Without ESRGAN_REDIS_URL it runs its own worker threads."""
    import logging

    import uvicorn

    from esrgan.service.server import head_timeout_protocol
    from esrgan.service.settings import get_settings, redacted

    settings = get_settings()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mode = f"Redis queue {redacted(settings.redis_url)}" if settings.redis_url else "in-process workers"
    typer.echo(f"esrgan serve: http://{host}:{port} ({mode}; models: {', '.join(settings.weights)})")
    uvicorn.run(
        "esrgan.service.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        http=head_timeout_protocol(settings.head_timeout),
        server_header=False,  # no advertising of the server software
    )


@app.command()
def worker(
    concurrency: int | None = typer.Option(None, help="worker processes (default: ESRGAN_WORKER_CONCURRENCY)"),
    name: str | None = typer.Option(None, help="worker name shown in RQ (default: random)"),
    burst: bool = typer.Option(False, help="exit once the queue is empty"),
) -> None:
    """Run an RQ worker on ESRGAN_REDIS_URL: loads the model pairs once, then takes jobs until stopped."""
    from redis import Redis

    from esrgan.service.settings import get_settings
    from esrgan.service.worker import EsrganWorker, run_worker

    settings = get_settings()
    if not settings.redis_url:
        raise typer.BadParameter("set ESRGAN_REDIS_URL (e.g. redis://localhost:6379/0): workers need a shared queue")
    count = concurrency or settings.worker_concurrency
    if count == 1:
        run_worker(settings, name=name, burst=burst)
        return
    from rq.worker_pool import WorkerPool

    # Each pool process is a full EsrganWorker with its own resident models; dead ones are replaced.
    pool = WorkerPool([settings.queue_name], Redis.from_url(settings.redis_url), count, worker_class=EsrganWorker)
    pool.start(burst=burst)
