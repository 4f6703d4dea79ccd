#!/usr/bin/env bash
# tests/e2e/fault.sh FAULT: faults of the e2e cases that take more than one
# `stack` command. Runs inside vc-loadgen --at, with the stack's environment
# (deploy/local/stack env) exported.
#
#   kill_restart COMP [I]  kill -9 the component and start it again at once
#   sink_kill              kill -9 the sink and start it again; then wait until
#                          the database has caught up (below)
#   mariadb_restart        stop the MariaDB writer and start it again; then wait
#                          until the database has caught up
#   flushall_rebuild       stop the aggregator, FLUSHALL on every Redis master,
#                          `vc-aggregator rebuild` (checkpoints + the log), start it again
#
# The database has caught up when the sink has stored (sink_offsets, group
# vc-sink) an offset at or past every partition's end as it was just before
# the fault: everything produced before the fault is in the database. The
# seconds from the fault to that point go into $VC_STACK_DIR/recovery.db
# (tests/e2e/e2e.sh reports them as the case's recovery time).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=$REPO/deploy/local/stack
CHECK=$REPO/tests/e2e/check.py
: "${VC_REDIS_NODES:?run with the stack environment}" "${VC_BUILD_DIR:?}" "${VC_STACK_DIR:?}"

now() { date +%s.%N; }

# db_recovery T0 WATERMARKS: wait (60 s at most) until the sink stored
# WATERMARKS, write the seconds since T0.
db_recovery() {
    local t0=$1 wm=$2 deadline=$((SECONDS + 60)) out
    until out=$(python3 "$CHECK" offsets "${VC_MYSQL_DB:-vc}" vc-sink "$wm"); do
        if ((SECONDS >= deadline)); then
            echo "fault.sh: the sink did not catch up within 60 s ($out)" >&2
            return 1
        fi
        sleep 0.2
    done
    python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(now)" \
        >"$VC_STACK_DIR/recovery.db"
    echo "fault.sh: database caught up $(cat "$VC_STACK_DIR/recovery.db") s after the fault" >&2
}

case ${1:-} in
kill_restart)
    "$STACK" kill "${@:2}"
    "$STACK" start "${@:2}"
    ;;
sink_kill)
    wm=$(python3 "$CHECK" watermarks)
    t0=$(now)
    "$STACK" kill sink
    "$STACK" start sink
    db_recovery "$t0" "$wm"
    ;;
mariadb_restart)
    wm=$(python3 "$CHECK" watermarks)
    t0=$(now)
    "$STACK" stop mariadb
    "$STACK" start mariadb
    db_recovery "$t0" "$wm"
    ;;
flushall_rebuild)
    "$STACK" stop aggregator 0
    n=0
    for node in ${VC_REDIS_NODES//,/ }; do
        host=${node%:*} port=${node##*:}
        role=$(redis-cli -h "$host" -p "$port" role 2>/dev/null | head -n1) || continue
        if [[ $role == master ]]; then
            redis-cli -h "$host" -p "$port" flushall >/dev/null
            n=$((n + 1))
        fi
    done
    ((n == 3)) || { echo "fault.sh: flushed $n masters, expected 3" >&2; exit 1; }
    echo "fault.sh: flushed $n masters; rebuilding" >&2
    timeout 120 "$VC_BUILD_DIR/aggregator/vc-aggregator" rebuild 2>&1 | tail -n 3 >&2
    "$STACK" start aggregator 0
    ;;
*)
    echo "usage: fault.sh kill_restart COMP [I] | sink_kill | mariadb_restart | flushall_rebuild" >&2
    exit 2
    ;;
esac
