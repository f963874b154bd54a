#!/usr/bin/env bash
# The crop stage's GPU checks as one script, for a machine with an NVIDIA GPU that has its own
# python3 with torch, OpenCV, Pillow, pandas, pyarrow, joblib and pytest but no project venv and no
# network: the CUDA detector against the TensorFlow reference on the 233 reference images, then
# its speed at 250x250 (target: over 1,000 images/s batched).
#
# Prepare on the development machine (.device/ is ignored by git; ~5 MB):
#   .venv/bin/python benchmarks/reference/reference_images.py copy \
#       --lfw ../shared/data/lfw/lfw-deepfunneled --fixture tests/detect/fixtures/reference_lfw.json \
#       --out .device/lfw/lfw-deepfunneled
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .device/wheels \
#       mtcnn==1.0.0 lz4==4.4.5
# Run there with .device/ taken along:  bash benchmarks/gpu_checks.sh
# DEVICE (cuda), PYTHON (python3), PROCESSES ("1 4 8") and OUT (benchmarks/results) can be set.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
PROCESSES=${PROCESSES:-"1 4 8"}
RESULTS=${OUT:-benchmarks/results}
export DO_NOT_TRACK=true MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false
export FACENET_LFW_DIR=$PWD/.device/lfw
if [ ! -d "$FACENET_LFW_DIR/lfw-deepfunneled" ]; then
    echo "gpu_checks: $FACENET_LFW_DIR/lfw-deepfunneled is missing: prepare .device/ first (see the top of $0)" >&2
    exit 2
fi
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
if compgen -G ".device/wheels/*.whl" > /dev/null; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target "$site" .device/wheels/*.whl
fi
export PYTHONPATH=$PWD:$site${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$RESULTS"

"$PYTHON" -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/detect/test_reference.py -k "$DEVICE" 2>&1 | tee "$RESULTS/reference_$DEVICE.txt"
# shellcheck disable=SC2086  # PROCESSES is a list of counts
"$PYTHON" benchmarks/bench_crop.py --device "$DEVICE" --lfw .device/lfw/lfw-deepfunneled --sizes 250x250 \
    --count 233 --batch-sizes 1 64 256 --processes $PROCESSES --repeats 5 --no-reference \
    --out "$RESULTS/bench_crop_$DEVICE.json"
"$PYTHON" benchmarks/bench_embed.py --device "$DEVICE" --lfw .device/lfw/lfw-deepfunneled --photos 64 --runs 3 --out "$RESULTS/bench_embed_$DEVICE.json"
