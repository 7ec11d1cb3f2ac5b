"""Container health checks, light enough to run every 30 s: no torch, no settings validation.

`healthcheck.py api`     GET /healthz on the API inside this container answers 2xx.
`healthcheck.py worker`  Redis answers and an RQ worker on this host (the container's hostname) is registered, which
                         RQ keeps alive only while the worker heartbeats.
Exit status 0 means healthy, 1 unhealthy (the reason goes to stderr, which `podman/docker inspect` shows).
"""

import os
import socket
import sys
import urllib.request


def check_api() -> None:
    request = urllib.request.Request("http://127.0.0.1:8000/healthz")
    key = os.environ.get("ESRGAN_API_KEY")
    if key:
        request.add_header("X-API-Key", key)
    with urllib.request.urlopen(request, timeout=4) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"/healthz answered {response.status}")


def check_worker() -> None:
    from redis import Redis
    from rq import Worker

    url = os.environ.get("ESRGAN_REDIS_URL")
    if not url:
        raise RuntimeError("ESRGAN_REDIS_URL is not set: a worker needs Redis")
    connection = Redis.from_url(url, socket_timeout=5)
    connection.ping()
    host = socket.gethostname()
    if not any(worker.hostname == host for worker in Worker.all(connection=connection)):
        raise RuntimeError(f"no RQ worker registered from host {host}")


def main() -> int:
    checks = {"api": check_api, "worker": check_worker}
    if len(sys.argv) != 2 or sys.argv[1] not in checks:
        print(f"usage: healthcheck.py {'|'.join(checks)}", file=sys.stderr)
        return 2
    try:
        checks[sys.argv[1]]()
    except Exception as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
