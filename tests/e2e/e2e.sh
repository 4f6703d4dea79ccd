#!/usr/bin/env bash
# tests/e2e/e2e.sh BUILD_DIR PORT_BASE CASE
#
# One end-to-end case: a private full stack (Redis Cluster, MariaDB writer +
# replica, the broker, 2 gateways, the aggregator, the sink) from BUILD_DIR on
# PORT_BASE, vc-loadgen as the viewers and the ground truth, and a fault
# injected while it runs (vc-loadgen --at). Passes when every checkpoint
# converged exactly (pushed counts, GET /api/streams/<id> on every gateway
# and Redis all equal the truth), the fault really happened, no per-viewer
# state is left in Redis after everyone left, and no service reported a
# sanitizer error. The stack is torn down however the case ends.
#
# Cases: steady, gateway_kill, gateway_term, aggregator_kill, redis_failover,
#        mariadb_restart
set -euo pipefail

BUILD=$(realpath "${1:?usage: e2e.sh BUILD_DIR PORT_BASE CASE}")
BASE=${2:?port base}
CASE=${3:?case}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=$REPO/deploy/local/stack
LG=$BUILD/tests/load/vc-loadgen

# The caller's stack (tests/run's) must not leak into this private one.
for v in $(compgen -e | grep '^VC_'); do unset "$v"; done
export VC_BUILD_DIR=$BUILD VC_PORT_BASE=$BASE VC_GATEWAYS=2 VC_AGGREGATORS=1
export VC_STACK_DIR=$BUILD/tests/e2e-work/$CASE
# Short liveness so that a dead gateway's viewers leave within the case: the
# gateways heartbeat every 2 s and the aggregator (and sink) drop a gateway
# silent for 8 s of event time (the production defaults are 10 s and 90 s).
export VC_HEARTBEAT_SECONDS=2 VC_GATEWAY_TIMEOUT_MS=8000
# Under ASan/UBSan (the test build) a finding must stop the service, so that
# it shows in its log.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

for bin in "$LG" "$BUILD/gateway/vc-gateway" "$BUILD/aggregator/vc-aggregator" "$BUILD/sink/vc-sink" \
           "$BUILD/deploy/local/vc-broker"; do
    [[ -x $bin ]] || { echo "not ok - $bin is not built (cmake --build $BUILD)"; exit 1; }
done

cleanup() {
    local rc=$?
    "$STACK" down >/dev/null 2>&1 || true
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REPORT=$VC_STACK_DIR/report.json

S="$STACK"
# Common load: a few hundred viewers (the services run under ASan here).
common=(--seed 7 --streams 30 --zipf 1.0 --tabs-fraction 0.3 --refresh-fraction 0.2 --progress 5
        --report "$REPORT")
# expect: python expressions over the report r that must all hold.
expect=("r['result'] == 'pass'" "all(c['exit'] == 0 for c in r['commands'])"
        "r['leftover_keys'] == 0" "r['totals']['connections_established'] >= r['config']['viewers']")
case $CASE in
steady)
    # Churn (mean watch 20 s), two-tab users, refreshes and a spike: a star
    # goes live and 400 viewers arrive within 4 s.
    args=(--viewers 800 --churn-seconds 20 --spike 400:4 --spike-at 8 --duration 30 --checkpoints 15
          --converge-timeout 20)
    expect+=("r['totals']['refreshes'] > 0" "r['totals']['sessions_ended'] > r['config']['viewers']"
             "r['streams'][-1]['truth_peak'] >= 300" "r['totals']['connections_lost'] == 0")
    ;;
gateway_kill)
    # kill -9 gateway 1: its viewers reconnect to gateway 0 and count once;
    # gateway 1's entries expire (8 s) and the counts equal the truth. Then
    # it comes back and takes new viewers again.
    args=(--viewers 500 --churn-seconds 60 --duration 40 --checkpoints 5,24 --converge-timeout 30
          --at "8:$S kill gateway 1" --at "26:$S start gateway 1")
    expect+=("r['totals']['connections_lost'] > 0" "len(r['commands']) == 2")
    ;;
gateway_term)
    # SIGTERM gateway 1: it emits the leaves and closes its viewers with 1001;
    # they reconnect to gateway 0. The liveness timeout is long here (60 s),
    # so the counts can only converge in time through the emitted leaves,
    # not through the expiry of the gateway.
    export VC_GATEWAY_TIMEOUT_MS=60000
    args=(--viewers 500 --churn-seconds 60 --duration 36 --checkpoints 5,22 --converge-timeout 30
          --at "8:$S stop gateway 1" --at "24:$S start gateway 1")
    expect+=("r['totals']['lost_by_close_code'].get('1001', 0) > 0" "len(r['commands']) == 2")
    ;;
aggregator_kill)
    # kill -9 the aggregator mid-run and restart it: it resumes from Redis
    # and its committed offsets, and the counts are exact again.
    args=(--viewers 500 --churn-seconds 30 --duration 32 --checkpoints 5,24 --converge-timeout 30
          --at "9:$S kill aggregator 0" --at "13:$S start aggregator 0")
    expect+=("len(r['commands']) == 2")
    ;;
redis_failover)
    # kill -9 a Redis master: its replica is promoted; the aggregator and the
    # gateways follow the new slot map and the counts are exact again.
    args=(--viewers 500 --churn-seconds 30 --duration 34 --checkpoints 5,24 --converge-timeout 30
          --at "8:$S kill redis 0" --at "26:$S start redis 0")
    expect+=("len(r['commands']) == 2")
    ;;
mariadb_restart)
    # Restart the MariaDB writer under load: the counts never depend on it.
    args=(--viewers 500 --churn-seconds 30 --duration 30 --checkpoints 5,22 --converge-timeout 30
          --at "8:$S stop mariadb" --at "12:$S start mariadb")
    expect+=("len(r['commands']) == 2")
    ;;
*)
    echo "not ok - unknown case '$CASE'"
    exit 1
    ;;
esac

"$STACK" down >/dev/null 2>&1 || true # an earlier run that was interrupted
rm -rf "$VC_STACK_DIR/log"
"$STACK" up
set -a
# shellcheck disable=SC1090
source <("$STACK" env)
set +a
REPORT=$VC_STACK_DIR/report.json
rm -f "$REPORT"
echo "# e2e $CASE: vc-loadgen ${args[*]}"
rc=0
timeout -k 5 170 "$LG" "${common[@]}" "${args[@]}" || rc=$?
failed=0
if ((rc != 0)); then
    echo "not ok - vc-loadgen exited $rc (mismatches above; report $REPORT)"
    failed=1
fi
if [[ -s $REPORT ]]; then
    for e in "${expect[@]}"; do
        if python3 -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ($e) else 1)" "$REPORT"; then
            echo "ok - $e"
        else
            echo "not ok - $e"
            failed=1
        fi
    done
else
    echo "not ok - no report written"
    failed=1
fi
# Sanitizer findings in any service.
if grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$VC_STACK_DIR"/log/*.log 2>/dev/null; then
    echo "not ok - a service reported a sanitizer error (logs above)"
    grep -h -A20 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$VC_STACK_DIR"/log/*.log | head -60
    failed=1
fi
if ((failed)); then
    for c in gateway-0 gateway-1 aggregator-0 sink; do
        [[ -f $VC_STACK_DIR/log/$c.log ]] || continue
        echo "--- last lines of $c.log"
        tail -n 15 "$VC_STACK_DIR/log/$c.log"
    done
    echo "# e2e $CASE FAILED (stack dir $VC_STACK_DIR kept)"
    exit 1
fi
echo "# e2e $CASE passed"
rm -rf "$VC_STACK_DIR/redis" "$VC_STACK_DIR/mariadb"
