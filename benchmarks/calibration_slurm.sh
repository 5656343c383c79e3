#!/usr/bin/env bash
# Run the calibration grid as a SLURM array: one job per shard of replicates, then one merge job.
#
#   benchmarks/calibration_slurm.sh [REPLICATES] [SHARD] [PLAN]      (defaults: 100 10 default)
#
# Each array task runs `benchmarks/calibration.py run --replicates <its shard>` over every setting
# in $SETTINGS (default: all ten) and writes one file per replicate under results/calibration_runs/,
# so tasks never collide and a rerun skips what exists. The merge job (afterok) writes
# benchmarks/results/calibration.{md,tsv,json} and src/autospec/stats/calibration_table.json.
# Site options (partition, account) come from SBATCH_* environment variables, e.g.
# SBATCH_PARTITION=cpu. Run from the repository root with the project's .venv.
set -euo pipefail
reps=${1:-100}
shard=${2:-10}
plan=${3:-default}
settings=${SETTINGS:-null:20/20,null:72/75,null:30/10,null:15/45,0.5:20/20,1:20/20,2:20/20,0.5:72/75,1:72/75,2:72/75}
py=${PYTHON:-.venv/bin/python}
tasks=$(((reps + shard - 1) / shard))
mkdir -p results/calib_logs
job=$(sbatch --parsable --array=0-$((tasks - 1)) --cpus-per-task=1 --mem=4G --time=24:00:00 \
    --job-name=autospec-calibration --output=results/calib_logs/%A_%a.log \
    --wrap "lo=\$((SLURM_ARRAY_TASK_ID * $shard)); hi=\$((lo + $shard - 1)); [ \$hi -lt $reps ] || hi=$((reps - 1)); \
$py benchmarks/calibration.py run --plan '$plan' --settings '$settings' --replicates \$lo-\$hi")
sbatch --parsable --dependency=afterok:"$job" --cpus-per-task=1 --mem=4G --time=01:00:00 \
    --job-name=autospec-calibration-merge --output=results/calib_logs/merge_%j.log \
    --wrap "$py benchmarks/calibration.py merge"
echo "submitted array job $job ($tasks tasks) and its merge job"
