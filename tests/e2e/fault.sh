#!/usr/bin/env bash
# tests/e2e/fault.sh FAULT: faults of the e2e cases that take more than one
# `stack` command. Runs inside vc-loadgen --at, with the stack's environment
# (deploy/local/stack env) exported.
#
#   flushall_rebuild   stop the aggregator, FLUSHALL on every Redis master,
#                      `vc-aggregator rebuild` (checkpoints + the log), start it again
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=$REPO/deploy/local/stack
: "${VC_REDIS_NODES:?run with the stack environment}" "${VC_BUILD_DIR:?}"

case ${1:-} in
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
    echo "usage: fault.sh flushall_rebuild" >&2
    exit 2
    ;;
esac
