#!/usr/bin/env bash
# A one-node Slurm on this machine, for bespoke's Slurm tests, CI and users who want to try `sweep --slurm`.
#
#   scripts/slurm-local.sh start DIR   # munged + slurmctld + slurmd, all state/logs/sockets under DIR
#   export SLURM_CONF=DIR/slurm.conf   # what sbatch/squeue/scancel read (start prints this line)
#   scripts/slurm-local.sh stop DIR    # stop the three daemons (by the pids they wrote), keep DIR's logs
#   scripts/slurm-local.sh status DIR  # exit 0 when the node is up and idle/allocated
#
# Needs Debian's slurmctld, slurmd and munge packages (`apt-get install -y slurmctld slurmd munge`) and root
# (slurmd starts jobs as their owner). No systemd: the daemons run in the background with their own munge key
# and socket, so an existing munge/Slurm on the machine is neither used nor disturbed. Minimal slurm.conf:
# proctrack/linuxproc, task/none, no accounting storage, the node's real CPU count (`slurmd -C`).
set -euo pipefail

die() { echo "slurm-local: $*" >&2; exit 1; }
cmd=${1:-}; dir=${2:-}
[[ -n "$cmd" && -n "$dir" ]] || die "usage: $0 start|stop|status DIR"

conf="$dir/slurm.conf"

stop_pidfile() {  # stop the daemon whose pid is in $1: SIGTERM, wait up to 10 s, then SIGKILL
  local file=$1 pid
  [[ -f "$file" ]] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

node_up() {
  SLURM_CONF="$conf" sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

case "$cmd" in
  start)
    for program in munged slurmctld slurmd sbatch; do
      command -v "$program" >/dev/null 2>&1 || die "$program not found: apt-get install -y slurmctld slurmd munge"
    done
    [[ $(id -u) -eq 0 ]] || die "run as root (slurmd starts each job as its owner)"
    if [[ -f "$conf" ]] && node_up; then echo "export SLURM_CONF=$conf"; exit 0; fi
    mkdir -p "$dir"/{state,spool,log,munge}
    dir=$(cd "$dir" && pwd); conf="$dir/slurm.conf"
    chmod 700 "$dir/munge"
    [[ -f "$dir/munge/munge.key" ]] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2>/dev/null;
                                         chmod 400 "$dir/munge/munge.key"; }
    munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
      --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" \
      || die "munged did not start (see $dir/log/munged.log)"
    host=$(hostname -s)
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -1)
    # free TCP ports for the two daemons, so a second local cluster (or a real one) does not collide
    read -r ctld_port slurmd_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
    cat > "$conf" <<CONF
# one-node Slurm written by bespoke's scripts/slurm-local.sh
ClusterName=bespoke-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=20
MinJobAge=300
SchedulerParameters=sched_interval=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    SLURM_CONF="$conf" slurmctld -i -f "$conf" || die "slurmctld did not start (see $dir/log/slurmctld.log)"
    SLURM_CONF="$conf" slurmd -f "$conf" || die "slurmd did not start (see $dir/log/slurmd.log)"
    for _ in $(seq 150); do node_up && break; sleep 0.2; done
    node_up || die "the node did not come up in 30 s (see $dir/log/slurmctld.log and slurmd.log)"
    echo "export SLURM_CONF=$conf"
    ;;
  stop)
    [[ -d "$dir" ]] || exit 0
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    if [[ -S "$dir/munge/munge.socket" ]]; then munged --stop --socket="$dir/munge/munge.socket" >/dev/null 2>&1 || true; fi
    stop_pidfile "$dir/munge/munged.pid"
    ;;
  status)
    node_up
    ;;
  *) die "usage: $0 start|stop|status DIR" ;;
esac
