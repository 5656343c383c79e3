#!/usr/bin/env bash
# Run the tiny study through a REAL Slurm (single node) with the Snakemake SLURM executor.
#
#   scripts/slurm_ci.sh [WORKDIR]
#
# 1. Slurm: if a slurmd already answers (`sinfo` shows a usable node) it is used as is; otherwise
#    slurmctld, slurmd and munge are installed with apt-get (root only) and started on this host
#    with a fresh state directory ($SLURM_STATE, default a new /tmp/autospec-slurm-state.XXXXXX)
#    and `slurmctld -c`, so no job recovered from an earlier, killed cluster can hold the node.
#    No accounting: job status comes from squeue, with MinJobAge=600. A second slurmd is never
#    started.
# 2. The workflow files are copied into WORKDIR (default: a new temp dir) and the tiny study
#    (config/tiny.yaml) runs there with `--workflow-profile profiles/slurm` and
#    `--slurm-init-seconds-before-status-checks 2`.
# 3. The outputs are checked (spectra of every run, group tests, figures).
# 4. The daemons this script started are stopped by their pid files; nothing else is touched.
#
# Exit status: 0 passed, 77 Slurm cannot be set up here (not root / no apt-get; the reason is the
# last line on stdout), anything else a failure.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STATE=${SLURM_STATE:-}  # set when Slurm is started here
PY=${PYTHON:-$REPO/.venv/bin/python}
SNAKEMAKE=$(dirname "$PY")/snakemake
WORK=${1:-$(mktemp -d /tmp/autospec-slurm-ci.XXXXXX)}
STARTED=()   # pid files of the daemons started here

log() { echo "[slurm_ci] $*"; }
skip() { log "SKIP: $*"; exit 77; }

stop_started() {
    local f pid
    for f in "${STARTED[@]}"; do
        [ -s "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        log "stopped pid $pid ($f)"
    done
}
trap stop_started EXIT

slurm_up() {
    # a node that answers is used as is: never a second slurmd on the same config
    if command -v sinfo >/dev/null && [ -n "$(sinfo -h -o %t 2>/dev/null | grep -E '^(idle|mix|alloc)' || true)" ]; then
        log "using the running Slurm: $(sinfo -h -o '%P %t %N' | head -1)"
        return
    fi
    [ "$(id -u)" = 0 ] || skip "not root: cannot install or start Slurm daemons"
    export DEBIAN_FRONTEND=noninteractive
    local pkgs="slurmctld slurmd slurm-client munge"
    if ! dpkg -s $pkgs >/dev/null 2>&1; then
        command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get"
        log "installing $pkgs"
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs; } >/dev/null \
            || skip "apt-get could not install $pkgs"
    fi
    if pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null; then
        echo "[slurm_ci] Slurm daemons run ($(pgrep -d, -x 'slurmd|slurmctld')) but no node is usable; not starting another" >&2
        sinfo -N -l >&2 || true
        exit 1
    fi
    STATE=${STATE:-$(mktemp -d /tmp/autospec-slurm-state.XXXXXX)}
    mkdir -p "$STATE"/{spool/ctld,spool/d,log,run}
    # munge (authentication)
    [ -s /etc/munge/munge.key ] || mungekey --create --force
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    if ! munge -n >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged --num-threads=2
        STARTED+=(/run/munge/munged.pid)
        for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    munge -n | unmunge >/dev/null
    # slurm.conf: one node (this host), no accounting storage
    local mem node
    mem=$(awk '/MemTotal/ {print int($2/1024*0.9)}' /proc/meminfo)
    node=$(slurmd -C | head -1 | sed -E "s/^NodeName=[^ ]+/NodeName=localhost NodeAddr=127.0.0.1/; s/RealMemory=[0-9]+/RealMemory=$mem/")
    cat > /etc/slurm/slurm.conf <<EOF
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# finished jobs stay visible to squeue (the executor's status source) for 10 min
MinJobAge=600
$node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    # -c: start from empty state (a saved job from an earlier, killed cluster would keep the node busy)
    slurmctld -c -i
    STARTED+=("$STATE/run/slurmctld.pid")
    slurmd -N localhost
    STARTED+=("$STATE/run/slurmd.pid")
    for _ in $(seq 300); do [ "$(sinfo -h -n localhost -o %t 2>/dev/null)" = idle ] && break; sleep 0.2; done
    if [ "$(sinfo -h -n localhost -o %t 2>/dev/null)" != idle ]; then
        {
            echo "[slurm_ci] node did not become idle within 60 s: $(sinfo -h -n localhost -o '%t %E' 2>&1)"
            squeue 2>&1 | head -5
            tail -n 15 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" 2>&1
        } >&2
        exit 1
    fi
    log "started Slurm: $(sinfo -h -o '%P %t %N %c CPUs')"
}

[ -x "$SNAKEMAKE" ] || { echo "[slurm_ci] no snakemake at $SNAKEMAKE (set PYTHON=...)" >&2; exit 1; }
slurm_up

mkdir -p "$WORK"
for f in Snakefile rules config report envs profiles; do cp -r "$REPO/$f" "$WORK/"; done
cd "$WORK"
log "running the tiny study under SLURM in $WORK"
start=$(date +%s)
"$SNAKEMAKE" --workflow-profile profiles/slurm --configfile config/tiny.yaml \
    --slurm-init-seconds-before-status-checks 2 --jobs 4 > slurm_run.log 2>&1 \
    || { tail -60 slurm_run.log; echo "[slurm_ci] snakemake failed (log: $WORK/slurm_run.log)" >&2; exit 1; }
wall=$(( $(date +%s) - start ))
submitted=$(grep -c "Job .* has been submitted with SLURM jobid" slurm_run.log || true)

# the outputs: 15 runs with spectra, 5 group-test directories, 15 figures
runs=$(find results/tiny -name spectra.parquet -path '*seed*' | wc -l)
stats=$(find results/tiny -type d -name stats -not -path '*/cohorts/*' | wc -l)  # not FreeSurfer's <subject>/stats
figs=$(find results/tiny -path '*figures*' -name '*.png' | wc -l)
log "SLURM jobs submitted: $submitted; runs with spectra: $runs; stats dirs: $stats; figures: $figs; wall ${wall}s"
[ "$submitted" -ge 30 ] && [ "$runs" -eq 15 ] && [ "$stats" -eq 5 ] && [ "$figs" -eq 15 ] \
    || { echo "[slurm_ci] unexpected outputs" >&2; exit 1; }
"$PY" -m autospec audit -q results/tiny/demo/volumes/mlp/figures/spectra.png
log "PASSED in ${wall}s"
