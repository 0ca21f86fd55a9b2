#!/usr/bin/env bash
# The full-size models on one machine, one table: ASR RTFx (fp32 / bf16 at the stage's own batch budget, and NeMo's
# transcribe(paths, batch_size=B) on the same files), peak memory against the budget, S2S files/s batched vs one at a
# time on 10 s files, and the VAD stage beside them. On a node with one NVIDIA GPU it runs in under 8 minutes
# (models built once, then reused); on a CPU-only machine it runs the same table on a few small files.
#
#   bench/gpu.sh [MODELS_DIR] [extra bench/gpu.py flags, e.g. --device cpu --asr-files 8]
#
# MODELS_DIR defaults to $AMELA_FULLSIZE_MODELS, else ~/.cache/amela/fullsize (3.4 GB; build takes 1-3 minutes).
# Run it inside the allocation you will use, e.g.  srun --gpus=1 --time=15 bench/gpu.sh /scratch/$USER/fullsize
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
MODELS=${AMELA_FULLSIZE_MODELS:-$HOME/.cache/amela/fullsize}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then MODELS=$1; shift; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
start=$(date +%s)
echo "== models in $MODELS" >&2
"$PY" scripts/fullsize_models.py "$MODELS" --only parakeet --only mhubert --only kmeans --only vocoder >&2
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv >&2 || true
fi
echo "== bench ($(( $(date +%s) - start )) s so far)" >&2
"$PY" bench/gpu.py --models "$MODELS" "$@"
echo "== total $(( $(date +%s) - start )) s" >&2
