#!/usr/bin/env bash
# A real SLURM on loopback for the test suite: munged, one slurmctld and two
# slurmd (node1, node2) on 127.0.0.1 with their own ports, all state under a
# temporary directory; a job submitted with `xpu slurm submit --nodes 2`
# (ranks started by OpenMPI's mpirun inside the allocation) must complete
# with one rank on each node. The daemons are stopped by their pid files when
# the script ends, whether it passes or not.
#
# `--launcher srun` (srun --mpi=pmix) fails here: with two slurmd on one
# host, the PMIx plugin's step set-up fails (pmixp_stepd_init).
#
#   scripts/slurm-test.sh [PATH/TO/xpu [PATH/TO/mpi_cholesky]]
#
# (xpu defaults to target/debug/xpu.) Given the `mpi_cholesky` example, it
# also submits it on both nodes and checks its result against one process.
#
# Needs root (the daemons run as root here) and Debian's slurm-wlm and munge,
# which it installs when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
XPU=${1:-target/debug/xpu}
XPU=$(realpath "$XPU")
CHOLESKY=${2:+$(realpath "$2")}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null \
    || ! command -v mpirun >/dev/null; then
    echo "== installing slurm-wlm, munge and OpenMPI"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        slurm-wlm munge openmpi-bin libopenmpi-dev >/dev/null
fi

DIR=$(mktemp -d /tmp/xpu-slurm.XXXXXX)
export SLURM_CONF=$DIR/slurm.conf
chmod 711 "$DIR"
mkdir -p "$DIR/state" "$DIR/spool/node1" "$DIR/spool/node2" "$DIR/munge" "$DIR/run"

stop() {
    local status=$?
    for pid in "$DIR"/run/*.pid; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    sleep 1
    for pid in "$DIR"/run/*.pid; do
        [ -f "$pid" ] && kill -9 "$(cat "$pid")" 2>/dev/null || true
    done
    # Logs stay for a failed run.
    [ "$status" != 0 ] || rm -rf "$DIR"
}
fail() {
    echo "slurm-test: $*" >&2
    for log in "$DIR"/*.log; do
        echo "---- $log" >&2
        tail -20 "$log" >&2 || true
    done
    exit 1
}
trap stop EXIT

# munge: a key of our own and a socket under $DIR.
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$DIR/munge/munge.key"
chmod 711 "$DIR/munge"
SOCKET=$DIR/munge/munge.socket
munged --force --key-file="$DIR/munge/munge.key" --socket="$SOCKET" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/munged.log" \
    --seed-file="$DIR/munge/seed"

PORT=$((20000 + RANDOM % 20000))
cat > "$SLURM_CONF" <<CONF
ClusterName=xpu
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
NodeName=node1 NodeAddr=127.0.0.1 NodeHostname=$(hostname) Port=$((PORT + 2)) CPUs=1 State=UNKNOWN
NodeName=node2 NodeAddr=127.0.0.1 NodeHostname=$(hostname) Port=$((PORT + 3)) CPUs=1 State=UNKNOWN
PartitionName=debug Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld -i || fail "slurmctld did not start"
slurmd -N node1 || fail "slurmd node1 did not start"
slurmd -N node2 || fail "slurmd node2 did not start"

# Wait until both nodes are idle.
for _ in $(seq 1 60); do
    idle=$(sinfo -h -N -o '%N %T' 2>/dev/null | grep -c idle || true)
    [ "$idle" = 2 ] && break
    sleep 0.5
done
[ "$idle" = 2 ] || fail "the nodes did not come up: $(sinfo -N 2>&1)"
echo "== SLURM up on loopback: $(sinfo -h -N -o '%N %T' | tr '\n' ' ')"

cd "$DIR"
echo "== xpu slurm submit --nodes 2 --ntasks-per-node 1"
# A job that never ends (a node that never comes back) fails the step.
timeout 300 "$XPU" slurm submit --nodes 2 --ntasks-per-node 1 --time 2 -- \
    sh -c 'echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE in job $SLURM_JOB_ID"' \
    | tee submit.txt || fail "the job did not complete"
out=$(sed -n 's/.*output in //p' submit.txt)
[ -f "$out" ] || fail "no output file $out"
grep -q "rank 0 of 2" "$out" && grep -q "rank 1 of 2" "$out" \
    || fail "the job did not run two ranks: $(cat "$out")"
cat "$out"

if [ -n "$CHOLESKY" ]; then
    echo "== the distributed Cholesky on both nodes (sbatch -N2, mpirun inside)"
    timeout 300 "$XPU" slurm submit --nodes 2 --ntasks-per-node 1 --time 3 -- \
        "$CHOLESKY" --n 256 --tile 64 --check \
        | tee cholesky.txt || fail "the Cholesky job did not complete"
    out=$(sed -n 's/.*output in //p' cholesky.txt)
    [ -f "$out" ] || fail "no output file $out"
    cat "$out"
    grep -q "^check: " "$out" && grep -q "^rank 1: sent" "$out" \
        || fail "the Cholesky job did not run and check on two ranks"
fi
