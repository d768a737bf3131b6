#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md in one call (timeouts keep it under 8 minutes, 460 s of runs):
#   1. the step makes no host synchronisation (torch.cuda.set_sync_debug_mode over whole training steps);
#   2. benchmarks/train_speed.py on the GPU at 64 and 32 px: the classic loop, the classic recipe in
#      fp32 (TF32) and bf16, the default recipe, channels-last, and torch.compile with CUDA graphs
#      (reduce-overhead; lazy R1 steps stay eager), img/s and peak memory by batch size at 64 px, the FLOPs
#      per image and the share of the bf16 matrix-product peak, and sampling speed.
# Needs only what a PyTorch GPU image has (torch, numpy, pillow, safetensors, tqdm, pyyaml): ganforge runs
# from src/ without being installed. Output goes to $OUT (default /tmp/ganforge-gpu).
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/ganforge-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch, ganforge; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
    2>&1 | tee -a "$OUT/gpu.txt"

echo "== 1. host synchronisations inside the training step"
timeout 60 $PY - <<'PY' 2>&1 | tee "$OUT/sync.txt"
import sys, warnings
import torch
sys.path.insert(0, "benchmarks")
from train_speed import default_recipe_config, make_trainer, synthetic_images

trainer = make_trainer(default_recipe_config("cuda"), synthetic_images(4096, 3, 64), 64, 3)
for _ in range(8):  # warm-up: cuDNN's autotuner and lazy initialisation may synchronise once
    trainer.train_step()
torch.cuda.synchronize()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    torch.cuda.set_sync_debug_mode("warn")
    for _ in range(8):  # two whole R1 cycles
        trainer.train_step()
    torch.cuda.set_sync_debug_mode("default")
syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
print(f"host synchronisations in 8 training steps: {len(syncs)}")
for line in sorted(set(syncs))[:10]:
    print("  ", line)
PY

echo "== 2. training and sampling speed"
timeout 300 $PY benchmarks/train_speed.py --device cuda --resolutions 64 --rounds 3 --steps 100 \
    --variants classic,fp32,bf16,default,channels_last,compiled --compile-mode reduce-overhead \
    --batch-sizes 64,256,1024,4096 2>&1 | tee "$OUT/train_speed_64.txt"
timeout 100 $PY benchmarks/train_speed.py --device cuda --resolutions 32 --rounds 2 --steps 100 \
    --variants classic,fp32,bf16,default,channels_last 2>&1 | tee "$OUT/train_speed_32.txt"
echo "results in $OUT"
