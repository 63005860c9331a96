#!/usr/bin/env bash
# The GPU benchmark on the device machine (one H100/H200): bench/gpu_train.py's arms on a
# full-size, randomly initialised gpt-oss-20b (built on the meta device, materialised on the GPU
# in bf16), seq 2048, JSON and log to $OUT. About 5 minutes; the python is cut at 7.
#
#   bash bench/device.sh prepare    # HERE, once: wheels into .whl/, the model config into .bench-device/
#   run(command="bash bench/device.sh", carry=[".whl", ".bench-device"], timeout_s=540)   # THERE
#
# Why the preparation: the device image has torch (2.11) but not this project's pins of
# transformers/peft (its transformers is older), and nothing can be downloaded there; and
# ../shared beside the checkout does not travel with the working tree, so its config.json is
# copied into a carried folder. bitsandbytes is not carried (its wheel alone is near the 64 MiB
# limit): the benchmark says so and uses torch's AdamW.
# Override the arms or sizes with ARMS=... BATCH=... SEQ=... STEPS=... in the command.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(transformers==5.24.0 peft==0.21.2 liger-kernel==0.8.5)  # liger: the fused loss kernel (optional)
CONFIG=.bench-device/gpt-oss-config.json

if [[ "${1:-}" == "prepare" ]]; then
  mkdir -p .whl .bench-device
  cp ../shared/data/gpt-oss/config.json "$CONFIG"
  # both folders are build inputs of one run, never part of the project
  exclude="$(git rev-parse --git-path info/exclude)"
  mkdir -p "$(dirname "$exclude")"
  for d in /.whl/ /.bench-device/; do grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >>"$exclude"; done
  # the device's python is 3.12 on x86-64; --no-deps: their other needs are in the image already
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
  du -sh .whl .bench-device
  exit 0
fi

: "${OUT:?run this on the device machine (OUT is unset); prepare first with: bash bench/device.sh prepare}"
[[ -f "$CONFIG" ]] || { echo "error: $CONFIG missing: run 'bash bench/device.sh prepare' here and carry .bench-device" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# fewer fragmentation OOMs between arms that each build and free a 42 GB model
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' | tee -a "$OUT/gpu.txt"

# gradient checkpointing is the benchmark's default; torch AdamW (no bitsandbytes here)
timeout 420 python3 bench/gpu_train.py --config "$CONFIG" --seq "${SEQ:-2048}" --batch "${BATCH:-4}" \
  --steps "${STEPS:-5}" --warmup 2 --optim adamw --corpus-tokens 115000000 \
  ${ARMS:+--arms "$ARMS"} --json "$OUT/gpu_train.json" 2>&1 | tee "$OUT/gpu_train.log"
