#!/usr/bin/env bash
# Slurm job array: one task per shard of a suite, then one dependent job that merges them.
#
#   N=8 SUITE=suites/smoke.toml sbatch --array=1-8 scripts/slurm-array.sh
#   # after all tasks finish (or chain it with --dependency=afterok:<array job id>):
#   riveg-bench merge reports/$RUN-shard*of8 --out reports/$RUN
#
# Every task shares the stage cache folder (put it on a shared file system), so re-submitting
# after a failure only recomputes what is missing. Adjust partition, GPUs and time to your site.
#SBATCH --job-name=riveg-bench
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --output=logs/riveg-bench-%A_%a.out
##SBATCH --gres=gpu:1            # uncomment for CUDA stages (onnxruntime-gpu in the venv)
set -euo pipefail

N=${N:?set N to the number of shards (the --array size)}
SUITE=${SUITE:-suites/default.toml}
RUN=${RUN:-$(basename "$SUITE" .toml)-${SLURM_ARRAY_JOB_ID:-local}}
K=${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=1-$N}
CACHE=${CACHE:-.riveg-cache}
BIN=${BIN:-target/release/riveg-bench}

mkdir -p logs
"$BIN" run --suite "$SUITE" --shard "$K/$N" --out "reports/$RUN-shard${K}of$N" \
  --cache-dir "$CACHE" --device "${DEVICE:-auto}" --on-error "${ON_ERROR:-skip}" --format json \
  > "logs/$RUN-shard${K}of$N.json"
