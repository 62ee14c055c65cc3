#!/usr/bin/env bash
# A one-node SLURM cluster on this Debian machine, for the SLURM tests and for trying hydra/launcher=slurm
# without a real cluster. Run as root; safe to run again (installs only what is missing, starts only what
# is not running, rewrites the config only when it changed). Afterwards `sinfo` shows partition `debug`
# with node `localhost` idle, and `sbatch` / `srun` work. docs/experiments.md "SLURM".
#
#   sudo scripts/local_slurm.sh          # install (apt: slurm-wlm, munge), configure, start, wait until idle
#   sudo scripts/local_slurm.sh stop     # stop slurmd, slurmctld and munged
#
# Containers have no systemd and often no writable cgroups, hence proctrack/linuxproc and task/none.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
SPOOL=/var/spool/slurm
LOG_DIR=/var/log/slurm

die() { echo "local_slurm.sh: $*" >&2; exit 1; }
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }   # the daemon of this pid file is alive
stop() {   # stop the daemon of a pid file and wait until it is gone
  if running "$1"; then kill "$(cat "$1")"; while running "$1"; do sleep 0.1; done; fi
}
[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"

if [ "${1:-}" = stop ]; then
  stop /run/slurmd.pid; stop /run/slurmctld.pid; stop /run/munge/munged.pid
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and there is no apt-get to install them"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# munge: the key SLURM's daemons and clients authenticate with
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged

mkdir -p "$CONF_DIR" "$SPOOL/ctld" "$SPOOL/d" "$LOG_DIR"
wanted=$(cat <<CONF
# Written by scripts/local_slurm.sh: one node (this machine), one partition.
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# requeued jobs may run again; a job killed at its time limit gets its signal first (submitit asks)
JobRequeue=1
KillWait=30
MinJobAge=300
NodeName=localhost CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$wanted" ]; then
  printf '%s\n' "$wanted" > "$CONF"
  changed=1
fi

if [ "$changed" = 1 ]; then
  stop /run/slurmd.pid; stop /run/slurmctld.pid
fi
running /run/slurmctld.pid || /usr/sbin/slurmctld
running /run/slurmd.pid || /usr/sbin/slurmd

for _ in $(seq 1 100); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
  case "$state" in
    idle*|mixed*|allocated*) echo "local_slurm.sh: partition debug, node localhost ($(nproc) CPUs) $state"; exit 0 ;;
    down*|drain*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
  esac
  sleep 0.2
done
die "the node did not become idle within 20 s: see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log"
