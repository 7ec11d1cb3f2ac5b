# GPU worker: `esrgan worker` with torch's CUDA build and onnxruntime-gpu on NVIDIA's CUDA runtime image (Ubuntu 24.04,
# Python 3.12). The host needs an NVIDIA driver for CUDA 13 and the NVIDIA container toolkit.
# Build from the repository root: docker build -f docker/worker-cuda.Dockerfile .
# The `wheel` stage needs no CUDA image or GPU, which is how CI checks this file: --target wheel.
ARG PYTHON_IMAGE=python:3.11-slim
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv && pip install --quiet pip==26.0.1
COPY docker/requirements.txt docker/requirements-cuda.txt docker/check_pins.py /reqs/
# Resolve the runtime's dependency set for CPython 3.12 on manylinux x86_64 from package metadata alone (no multi-GB
# download), then fail if the resolution holds a package that neither requirements file pins.
RUN platforms=$(for minor in $(seq 17 39); do printf -- '--platform manylinux_2_%s_x86_64 ' "$minor"; done) \
    && pip install --quiet --dry-run --ignore-installed --report /tmp/resolution.json --target /tmp/unused \
        --only-binary :all: --implementation cp --python-version 3.12.3 $platforms --platform manylinux2014_x86_64 \
        -r /reqs/requirements.txt -r /reqs/requirements-cuda.txt \
    && python /reqs/check_pins.py /tmp/resolution.json /reqs/requirements.txt /reqs/requirements-cuda.txt
COPY pyproject.toml README.md __init__.py cli.py /src/
COPY models /src/models
COPY service /src/service
COPY training /src/training
COPY web /src/web
RUN pip wheel --quiet --no-deps --wheel-dir /dist /src

FROM ${CUDA_IMAGE} AS cuda-runtime
# Python and tini only: no compilers, no pip outside the virtualenv.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv tini ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/esrgan esrgan \
    && mkdir -p /data/storage /data/weights \
    && chown -R esrgan:esrgan /data

# Dependencies only: PyPI's torch==2.13.0 is the CUDA 13 build; its CUDA libraries come as pinned nvidia-* wheels.
FROM cuda-runtime AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
COPY docker/requirements.txt docker/requirements-cuda.txt /reqs/
RUN python3 -m venv /opt/venv \
    && pip install --quiet pip==26.0.1 \
    && pip install --quiet -r /reqs/requirements.txt -r /reqs/requirements-cuda.txt

FROM cuda-runtime AS worker-cuda
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# COPY, not a bind mount: a RUN's cache key ignores what a bind mount holds, so a changed wheel (code or weights)
# would silently reuse the old install layer.
COPY --from=wheel /dist /tmp/dist
# A worker serves and never trains: the training sub-package goes, as in docker/Dockerfile.
RUN pip install --quiet --no-deps /tmp/dist/*.whl && pip check && rm -rf /tmp/dist \
    && rm -r "$(python -c 'import esrgan, os; print(os.path.dirname(esrgan.__file__))')/training"
COPY docker/healthcheck.py /opt/esrgan/healthcheck.py
ENV PYTHONUNBUFFERED=1 \
    ESRGAN_STORAGE_DIR=/data/storage \
    ESRGAN_CACHE_DIR=/data/weights
VOLUME ["/data/storage", "/data/weights"]
USER esrgan
WORKDIR /home/esrgan
ENTRYPOINT ["tini", "--"]
# RQ's warm shutdown: the first SIGTERM lets the current job finish, then the worker exits (compose gives it
# stop_grace_period); a worker killed mid-job has its job retried or failed by the service.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 CMD ["python", "/opt/esrgan/healthcheck.py", "worker"]
CMD ["esrgan", "worker"]
