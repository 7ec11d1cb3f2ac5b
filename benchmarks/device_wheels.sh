#!/usr/bin/env bash
# Wheels of the packages the GPU check needs that the device machine's image lacks, at the versions pinned in
# docker/requirements.txt, for its Python 3.12 on x86-64 Linux. They travel as the `carry` path device-wheels/
# (gitignored) and benchmarks/device_run.sh installs them there with `pip install --no-index`: that machine has no
# network. `make device-wheels` runs this.
#
#   benchmarks/device_wheels.sh [DEST]     DEST defaults to device-wheels/
#
# The image's package list is /work/.library/device/KINDS.md (fastapi, uvicorn, pydantic, redis, rq... are missing;
# torch, numpy, pillow, safetensors, typer, httpx, pyyaml, jinja2, prometheus-client... are there). typing-extensions
# is there too but travels anyway: pydantic-core needs a recent one and the image's version is not known here.
# DEVICE_PYTHON=3.11 fetches the same set for this machine's Python, to try the bootstrap here.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-device-wheels}
python_version=${DEVICE_PYTHON:-3.12}
pip=${PIP:-.venv/bin/pip}
missing=(
  fastapi starlette annotated-types pydantic pydantic-core pydantic-settings python-dotenv typing-inspection
  typing-extensions opentelemetry-api python-multipart uvicorn redis rq croniter pypng
)
rm -rf "$dest"
mkdir -p "$dest"
for name in "${missing[@]}"; do
  pin=$(grep -i "^${name}==" docker/requirements.txt) || { echo "$name is not pinned in docker/requirements.txt" >&2; exit 1; }
  "$pip" download --quiet --no-deps --only-binary=:all: --dest "$dest" \
    --python-version "$python_version" --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "$pin"
done
count=$(find "$dest" -name '*.whl' | wc -l)
if [ "$count" -ne "${#missing[@]}" ]; then
  echo "expected ${#missing[@]} wheels in $dest, found $count" >&2
  exit 1
fi
size=$(du -sm "$dest" | cut -f1)
echo "$dest: $count wheels, ${size} MiB (the device takes at most 64 MiB per call, working tree included)"
