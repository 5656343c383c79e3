#!/usr/bin/env bash
# Everything issue 14 wants checked on a CUDA GPU, in ONE call that fits in 8 minutes:
#   1. the spectral oracle tests on CUDA (AUTOSPEC_TEST_DEVICE=cuda; every spectrum against its
#      float64 oracle, async and sync),
#   2. the recorder benchmark (bench_recorder.py --device cuda: step ratios, per-sample route,
#      BERT-base-sized layer with top-64),
#   3. the training benchmark (bench_training.py --device cuda: recorded vs unrecorded epochs),
#   4. the tiny study (config/tiny.yaml) with training.device: cuda, end to end with Snakemake,
# and writes ONE results file: $OUT/gpu_check.md when $OUT is set, else
# benchmarks/results/gpu_check.md (--out DIR overrides both).
#
# --dry, or a machine without CUDA: the same steps on the CPU at minimal sizes (MLP oracle cases,
# the benchmarks' --smoke/--quick modes, the tiny study cut to one training run), written to
# gpu_check_dry.md; tests/test_gpu_check.py runs it. GPU_CHECK_STEPS="1 2 3" runs only those steps.
#
# Every step has its own time limit (seconds; override with GPU_CHECK_LIMITS="t1 t2 t3 t4") so a
# hung step cannot eat the others' time; a step that fails or times out is reported as such and
# the script exits 1 after the others have run. Usage:
#   bash benchmarks/gpu_check.sh [--dry] [--out DIR]
# Needs a Python with CUDA torch, the project's dependencies and snakemake: PYTHON=/path/to/python,
# else .venv/bin/python, else python3; this checkout's src/ comes first on PYTHONPATH.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
dry=0
out_dir="${OUT:-$here/benchmarks/results}"
while [ $# -gt 0 ]; do
    case "$1" in
        --dry) dry=1 ;;
        --out) out_dir="$2"; shift ;;
        *) echo "gpu_check.sh: unknown argument: $1 (use --dry, --out DIR)" >&2; exit 2 ;;
    esac
    shift
done

py="${PYTHON:-}"
if [ -z "$py" ]; then
    if [ -x "$here/.venv/bin/python" ]; then py="$here/.venv/bin/python"; else py="$(command -v python3)"; fi
fi
export PATH="$(dirname "$py"):$PATH"   # autospec and snakemake of the same environment
export PYTHONUNBUFFERED=1
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"

if [ "$dry" -eq 0 ] && ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check.sh: no CUDA device visible to torch: running the dry (CPU) mode" >&2
    dry=1
fi
if [ "$dry" -eq 1 ]; then
    device=cpu; quick="--quick"; smoke="--smoke"; name=gpu_check_dry.md
    read -r -a limits <<< "${GPU_CHECK_LIMITS:-60 60 60 150}"
else
    device=cuda; quick=""; smoke=""; name=gpu_check.md
    read -r -a limits <<< "${GPU_CHECK_LIMITS:-120 120 100 120}"  # 460 s of the 8 minutes
fi
mkdir -p "$out_dir"
work="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
report="$work/report.md"
failed=0

{
    echo "# gpu_check ($device$([ "$dry" -eq 1 ] && echo ', dry mode: minimal sizes'))"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    "$py" - <<'EOF'
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: {gpu}, Python {platform.python_version()}")
EOF
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo
    echo "| step | status | seconds | limit |"
    echo "|---|---|---|---|"
} > "$report"
details="$work/details.md"
: > "$details"

steps=" ${GPU_CHECK_STEPS:-1 2 3 4} "
n=0

# step NAME LIMIT COMMAND...: run it with a time limit, log its output, add a row and its details
step() {
    local title="$1" limit="$2"
    shift 2
    n=$((n + 1))
    if [[ "$steps" != *" $n "* ]]; then
        echo "| $title | skipped (GPU_CHECK_STEPS) | | |" >> "$report"
        return
    fi
    local log="$work/step.log" t0 rc status
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" > "$log" 2>&1
    rc=$?
    case $rc in
        0) status=passed ;;
        124|137) status="**timed out**"; failed=1 ;;
        *) status="**failed (exit $rc)**"; failed=1 ;;
    esac
    echo "| $title | $status | $(( $(date +%s) - t0 )) | $limit |" >> "$report"
    {
        echo
        echo "## $title: $status"
        echo
        echo '```'
        echo "\$ $*"
        tail -n 25 "$log"
        echo '```'
    } >> "$details"
}

# 1. oracle tests on the device: every route against its float64 oracle, async and sync, act/delta,
#    the worker pipeline (dry: the MLP oracle cases only)
oracle_tests=(tests/test_spectral_oracle.py tests/test_spectral_act_delta.py tests/test_spectral_async.py)
[ "$dry" -eq 1 ] && oracle_tests=(tests/test_spectral_oracle.py -k mlp)
step "oracle tests (AUTOSPEC_TEST_DEVICE=$device)" "${limits[0]}" \
    env AUTOSPEC_TEST_DEVICE="$device" "$py" -m pytest -q -m "not slow" -p no:cacheprovider "${oracle_tests[@]}"

# 2. recorder benchmark, its parts one by one so a slow part leaves the others' tables
bench_out="$work/bench"
recorder_parts=(timing wide per_sample)  # each part writes its own report: a timeout keeps the earlier ones
[ "$dry" -eq 1 ] && recorder_parts=(timing wide)  # the per-sample route is slow on a CPU
step "recorder benchmark ($device)" "${limits[1]}" bash -c '
    set -e
    for part in '"${recorder_parts[*]}"'; do
        "$0" benchmarks/bench_recorder.py '"$smoke"' --device "$1" --part "$part" --suffix "_${1}_$part" --out "$2"
    done' "$py" "$device" "$bench_out"

# 3. training benchmark (fewer epochs and one repeat: it has to fit beside the rest)
train_cases=()
rounds=3
[ "$dry" -eq 1 ] && train_cases=(--only volumes-mlp) && rounds=1
step "training benchmark ($device)" "${limits[2]}" \
    "$py" benchmarks/bench_training.py $quick --device "$device" --rounds $rounds --repeats 1 --suffix "_$device" \
    --out "$bench_out" "${train_cases[@]}"

# 4. the tiny study, training on the device, in a copy of the workflow (its own .snakemake/);
#    gpu=8: the tiny runs share the one GPU, 8 at a time
study="$work/study"
mkdir -p "$study"
cp -r Snakefile rules config envs report profiles "$study"/ 2>/dev/null
if [ "$dry" -eq 1 ]; then
    cat > "$study/gpu_check.yaml" <<EOF
training: {device: cpu, epochs: 1}
seeds: [0]
experiments:
  mnist: {mlp: {enabled: false}, cnn2d: {enabled: false}}
  sinusoid: {elman: {enabled: false}}
  volumes: {mlp: {panels: [A]}}
  timecourses: {cnn1d: {enabled: false}, lstm: {enabled: false}, bert: {enabled: false}}
  spatialmaps: {cnn3d: {enabled: false}}
EOF
else
    printf 'training: {device: cuda}\n' > "$study/gpu_check.yaml"
fi
until=()
[ "$dry" -eq 1 ] && until=(--until train)  # dry: the data and the one training run (stats and figures never touch the device)
step "tiny study (training.device: $device)" "${limits[3]}" \
    bash -c 'cd "$0" && snakemake --cores "$(nproc)" --resources gpu=8 --configfile config/tiny.yaml gpu_check.yaml "${@:1}"' \
    "$study" "${until[@]}"
if [ -d "$study/results/tiny" ]; then
    {
        echo
        echo "Tiny study: $(find "$study/results/tiny" -name spectra.parquet | wc -l) training runs wrote spectra; \
$(find "$study/results/tiny" -name '*.png' | wc -l) figures."
    } >> "$report"
fi

{
    cat "$details"
    for md in "$bench_out"/*.md; do
        [ -f "$md" ] || continue
        echo
        echo "## $(basename "$md")"
        echo
        cat "$md"
    done
} >> "$report"
cp "$report" "$out_dir/$name.tmp" && mv "$out_dir/$name.tmp" "$out_dir/$name"
echo "gpu_check.sh: wrote $out_dir/$name ($([ $failed -eq 0 ] && echo 'all steps passed' || echo 'SOME STEPS FAILED'))"
exit $failed
