#!/usr/bin/env bash
# The one command of the GPU check on a lent device machine (benchmarks/README.md, "GPU check"), carry: device-wheels
#
#   bash benchmarks/device_run.sh [gpu_check options]
#
# That machine has the image's python3 (torch 2.11, numpy, pillow...) but neither the service's packages nor an
# install of this project, and no network. So: the carried wheels (make device-wheels) go into a scratch folder with
# `pip install --no-index`, a link `esrgan -> the working tree` beside them makes `import esrgan` read this checkout,
# and the check writes its results to $OUT, the folder that comes back.
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
site=${DEVICE_SITE:-/tmp/esrgan-device-site}
wheel_dir=${DEVICE_WHEELS:-device-wheels}  # another folder only to try this here (DEVICE_PYTHON in device_wheels.sh)
rm -rf "$site"
mkdir -p "$site"
shopt -s nullglob
wheels=("$wheel_dir"/*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
  echo "$wheel_dir/ holds no wheels: run 'make device-wheels' here and name device-wheels in carry" >&2
  exit 2
fi
"$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$site" "${wheels[@]}" || exit 2
ln -s "$PWD" "$site/esrgan"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$python" -m benchmarks.gpu_check --out "${OUT:-test-artifacts/gpu_check}" "$@"
