#!/usr/bin/env bash
# tests/e2e/e2e.sh BUILD_DIR PORT_BASE CASE
#
# One end-to-end case: a private full stack (Redis Cluster, MariaDB writer +
# replica, the broker, 2 gateways, the aggregator, the sink) from BUILD_DIR on
# PORT_BASE, vc-loadgen as the viewers and the ground truth, and one fault
# injected while it runs (vc-loadgen --at). Passes when
#  - every checkpoint converged exactly (pushed counts, GET /api/streams/<id>
#    on every gateway and Redis all equal the truth), and the fault happened;
#  - nothing is left over after everyone left: every stream's count is 0, no
#    rank entry and no per-viewer key in Redis (check.py redis), one finished
#    user_sessions row per connection the loadgen established (fewer only
#    where a killed gateway lost events it had not sent yet), every
#    current_viewers row back to 0;
#  - the database equals, row by row, that of a run without the fault over
#    the same log: a second sink from the beginning of the topic into a fresh
#    database (refsink.sh, check.py db-compare);
#  - no service reported a sanitizer error.
# It writes the case's result (recovery time, checks) to
# BUILD_DIR/tests/e2e-work/results/CASE.json (tests/e2e/table.py). The stack
# is torn down however the case ends. Cases: see tests/e2e/README.md.
set -euo pipefail

BUILD=$(realpath "${1:?usage: e2e.sh BUILD_DIR PORT_BASE CASE}")
BASE=${2:?port base}
CASE=${3:?case}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=$REPO/deploy/local/stack
LG=$BUILD/tests/load/vc-loadgen

# The caller's stack (tests/run's) must not leak into this private one.
# (VC_E2E_* are this script's own knobs and stay.)
for v in $(compgen -e | grep '^VC_' | grep -v '^VC_E2E_'); do unset "$v"; done
export VC_BUILD_DIR=$BUILD VC_PORT_BASE=$BASE VC_GATEWAYS=2 VC_AGGREGATORS=1
export VC_STACK_DIR=$BUILD/tests/e2e-work/$CASE
# Short liveness so that a dead gateway's viewers leave within the case: the
# gateways heartbeat every 2 s and the aggregator (and sink) drop a gateway
# silent for 8 s of event time (the production defaults are 10 s and 90 s).
export VC_HEARTBEAT_SECONDS=2 VC_GATEWAY_TIMEOUT_MS=8000
# The sink closes 5 s buckets and flushes every second, so that the
# database's finished sessions can be compared with the loadgen's truth.
export VC_ROLLUP_SECONDS=5 VC_SINK_FLUSH_INTERVAL_MS=1000
# A sink killed with -9 holds its partitions until its group session times
# out (45 s by default): short here, so the restarted one takes over quickly.
export VC_SINK_SESSION_TIMEOUT_MS=6000
# The same for the aggregator (10 s by default): a restarted instance gets
# its partitions back once the killed one's session is over.
export VC_AGGREGATOR_SESSION_TIMEOUT_MS=6000
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
    "$REPO/tests/e2e/refsink.sh" stop >/dev/null 2>&1 || true
    "$STACK" down >/dev/null 2>&1 || true
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REPORT=$VC_STACK_DIR/report.json
CHECK=$REPO/tests/e2e/check.py
# Each case's result (JSON), kept across runs for tests/e2e/table.py.
RESULTS=$BUILD/tests/e2e-work/results

S="$STACK"
F=$REPO/tests/e2e/fault.sh
# Common load: a few hundred viewers (the services run under ASan here).
common=(--seed 7 --streams 30 --zipf 1.0 --tabs-fraction 0.3 --refresh-fraction 0.2 --progress 5
        --report "$REPORT")
# expect: python expressions over the report r that must all hold.
expect=("r['result'] == 'pass'" "all(c['exit'] == 0 for c in r['commands'])"
        "r['leftover_keys'] == 0" "r['totals']['connections_established'] >= r['config']['viewers']")
# The recovery time of a case (tests/e2e/README.md):
#   rec=(counts FROM CP): the fault starts at load time FROM; the checkpoint
#     CP (1 s later) pauses the model and waits until every count equals the
#     truth: recovery = CP's load time - FROM + CP's wait (an upper bound, to
#     the checkpoint's 0.5 s evaluation step).
#   rec=(db): fault.sh measures until the database holds everything produced
#     before the fault (recovery.db).
#   rec=(none): no fault.
# Each fault case checks convergence just before its fault too (t=4).
case $CASE in
steady)
    # Churn (mean watch 20 s), two-tab users, refreshes and a spike: a star
    # goes live and 400 viewers arrive within 4 s.
    fault="none (churn, two tabs, refreshes, a spike of 400 viewers in 4 s)"
    rec=(none)
    args=(--viewers 800 --churn-seconds 20 --spike 400:4 --spike-at 5 --duration 15 --checkpoints 10
          --converge-timeout 20)
    expect+=("r['totals']['refreshes'] > 0" "r['totals']['sessions_ended'] > r['config']['viewers']"
             "r['streams'][-1]['truth_peak'] >= 300" "r['totals']['connections_lost'] == 0")
    ;;
gateway_kill)
    # kill -9 gateway 1: its viewers reconnect to gateway 0 and count once;
    # gateway 1's entries expire (8 s) and the counts equal the truth. Then
    # it comes back and takes new viewers again.
    fault="kill -9 gateway 1 (8 s liveness timeout), restarted after recovery"
    rec=(counts 5 t=6)
    args=(--viewers 500 --churn-seconds 30 --duration 12 --checkpoints "4,6" --converge-timeout 30
          --at "5:$S kill gateway 1" --at "7:$S start gateway 1")
    expect+=("r['totals']['connections_lost'] > 0" "len(r['commands']) == 2")
    ;;
gateway_term)
    # SIGTERM gateway 1: it emits the leaves and closes its viewers with 1001;
    # they reconnect to gateway 0. The liveness timeout is long here (60 s),
    # so the counts can only converge in time through the emitted leaves,
    # not through the expiry of the gateway.
    export VC_GATEWAY_TIMEOUT_MS=60000
    fault="SIGTERM gateway 1 (60 s liveness timeout: only its leaves can fix the counts)"
    rec=(counts 5 t=6)
    args=(--viewers 500 --churn-seconds 30 --duration 12 --checkpoints "4,6" --converge-timeout 25
          --at "5:$S stop gateway 1" --at "7:$S start gateway 1")
    expect+=("r['totals']['lost_by_close_code'].get('1001', 0) > 0" "len(r['commands']) == 2")
    ;;
aggregator_kill)
    # kill -9 the aggregator and start it at once: it resumes from the offsets
    # it stored in Redis with the counts (exactly once).
    fault="kill -9 the aggregator, restarted at once"
    rec=(counts 5 t=6)
    args=(--viewers 500 --churn-seconds 30 --duration 12 --checkpoints "4,6" --converge-timeout 25
          --at "5:$F kill_restart aggregator 0")
    expect+=("len(r['commands']) == 1")
    ;;
sink_kill)
    # kill -9 the sink and start it at once: it resumes from its checkpoints
    # and offsets in the database (exactly once: no row lost or doubled). The
    # counts do not depend on it; the recovery is the database catching up.
    fault="kill -9 the sink, restarted at once"
    rec=(db)
    # (The load lasts until the database has recovered: vc-loadgen reports
    # only the commands that finished during the load.)
    args=(--viewers 500 --churn-seconds 30 --duration 18 --checkpoints 4 --converge-timeout 25
          --at "5:$F sink_kill")
    expect+=("len(r['commands']) == 1")
    ;;
redis_failover)
    # kill -9 a Redis master: its replica is promoted; the aggregator and the
    # gateways follow the new slot map and the counts are exact again. Then
    # the node comes back (as a replica).
    fault="kill -9 Redis master 0 (its replica is promoted), restarted after recovery"
    rec=(counts 5 t=6)
    args=(--viewers 500 --churn-seconds 30 --duration 12 --checkpoints "4,6" --converge-timeout 30
          --at "5:$S kill redis 0" --at "7:$S start redis 0")
    expect+=("len(r['commands']) == 2")
    ;;
redis_flushall)
    # FLUSHALL on every master: the operator's rebuild (vc-aggregator rebuild,
    # from its checkpoints and the log) restores the exact counts.
    fault="FLUSHALL on every Redis master, vc-aggregator rebuild"
    rec=(counts 5 t=6)
    args=(--viewers 500 --churn-seconds 30 --duration 10 --checkpoints "4,6" --converge-timeout 30
          --at "5:$F flushall_rebuild")
    expect+=("len(r['commands']) == 1")
    ;;
mariadb_restart)
    # Stop and start the MariaDB writer: the sink pauses, retries and
    # resumes where its last committed flush ended.
    fault="restart the MariaDB writer"
    rec=(db)
    args=(--viewers 500 --churn-seconds 30 --duration 12 --checkpoints 4 --converge-timeout 25
          --at "5:$F mariadb_restart")
    expect+=("len(r['commands']) == 1")
    ;;
broker)
    # The broker leading some of the events partitions is down for 30 s: the
    # gateways hold the events of those partitions, viewers keep watching,
    # and after it comes back every count is exact (recovery counted from
    # its return). The outage (30 s) is longer than the liveness timeout
    # (8 s): the gateways' backlogs reach a partition one after the other,
    # and no live gateway may be expired for it (schemas/vc_rules.h: the
    # live clock; the gateways skip heartbeats to a stalled partition).
    fault="broker 1 (leader of some partitions) down for 30 s"
    rec=(counts 35 t=36)
    args=(--viewers 500 --churn-seconds 30 --duration 40 --checkpoints "4,36" --converge-timeout 30
          --at "5:$S broker down 1" --at "35:$S broker up 1")
    expect+=("len(r['commands']) == 2")
    ;;
*)
    echo "not ok - unknown case '$CASE'"
    exit 1
    ;;
esac
# To reproduce a finding with another liveness timeout.
if [[ -n ${VC_E2E_GATEWAY_TIMEOUT_MS:-} ]]; then export VC_GATEWAY_TIMEOUT_MS=$VC_E2E_GATEWAY_TIMEOUT_MS; fi

# A fresh stack every time: the broker is in memory, so offsets stored in an
# old database (the sink's) would point into another run's topic.
"$STACK" down >/dev/null 2>&1 || true # an earlier run that was interrupted
rm -rf "$VC_STACK_DIR"
mkdir -p "$RESULTS"
rm -f "$RESULTS/$CASE.json"
t_case=$SECONDS
mark() { echo "# [$((SECONDS - t_case))s] $*"; }
"$STACK" up
set -a
# shellcheck disable=SC1090
source <("$STACK" env)
set +a
REPORT=$VC_STACK_DIR/report.json
rm -f "$REPORT"
# The reference run's database is prepared while the load runs (before it,
# where the fault is MariaDB's).
"$REPO/tests/e2e/refsink.sh" prepare >"$VC_STACK_DIR/refsink-prepare.log" 2>&1 &
prep=$!
if [[ $CASE == mariadb_restart ]]; then
    prep_rc=0
    wait $prep || prep_rc=$?
fi
mark "e2e $CASE: vc-loadgen ${args[*]}"
rc=0
timeout -k 5 120 "$LG" "${common[@]}" "${args[@]}" || rc=$?
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
if [[ ${rec[0]} == db && ! -s $VC_STACK_DIR/recovery.db ]]; then
    echo "not ok - the database's recovery was not measured (fault.sh failed?)"
    failed=1
fi

mark "load done"
# Nothing left over in Redis after everyone left (generic: every master,
# every vc key; see check.py).
if python3 "$CHECK" redis "$VC_STACK_DIR/redis-leftovers.json"; then
    echo "ok - nothing left over in Redis"
else
    echo "not ok - per-viewer state or counts left in Redis after everyone left"
    failed=1
fi

# The reference run: a second sink from the beginning of the same log into a
# fresh database (refsink.sh). Started now, it catches up while the checks
# below wait for the case's own sink.
if [[ $CASE != mariadb_restart ]]; then
    prep_rc=0
    wait $prep || prep_rc=$?
fi
if ((prep_rc != 0)) || ! "$REPO/tests/e2e/refsink.sh" start; then
    echo "not ok - the reference sink did not start"
    cat "$VC_STACK_DIR/refsink-prepare.log"
    failed=1
fi

# The database after everyone left: one finished session per connection (so
# no session is left open), every current_viewers row back to 0 (bounded
# wait: buckets close every 5 s of event time).
if [[ -s $REPORT ]]; then
    lo=$(python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print(r['streams'][0]['stream'])" "$REPORT")
    hi=$(python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print(r['streams'][-1]['stream'])" "$REPORT")
    db_state() {
        "$STACK" mysql writer -N -B -e "
            SELECT 's', stream_id, COUNT(*) FROM user_sessions WHERE stream_id BETWEEN $lo AND $hi GROUP BY stream_id;
            SELECT 'c', stream_id, viewer_count FROM current_viewers;
            SELECT 'r', leave_reason, COUNT(*) FROM user_sessions GROUP BY leave_reason"
    }
    # db_compare MODE: exact (rows == connections) or atmost (a killed
    # gateway may have lost events it had not produced yet).
    db_compare() {
        db_state >"$VC_STACK_DIR/db.txt" 2>"$VC_STACK_DIR/db.err" || return 1
        python3 - "$REPORT" "$VC_STACK_DIR/db.txt" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rows, current, reasons = {}, {}, {}
for line in open(sys.argv[2]):
    kind, key, n = line.split()
    if kind == 's':
        rows[int(key)] = int(n)
    elif kind == 'c':
        current[int(key)] = int(n)
    else:
        reasons[key] = int(n)
bad = []
for s in r['streams']:
    # connections_unknown: handshakes that timed out after their request
    # was sent; the gateway may or may not have established them.
    want, unk, got = s['connections'], s['connections_unknown'], rows.get(s['stream'], 0)
    if sys.argv[3] == 'exact':
        wrong = got < want or got > want + unk
    else:
        wrong = got > want + unk or (want > 0 and got == 0)
    if wrong:
        bad.append(f"stream {s['stream']}: {got} user_sessions rows, {want} connections (+{unk} unknown)")
    if want > 0 and s['stream'] not in current:
        bad.append(f"stream {s['stream']}: no current_viewers row")
# Only a killed gateway's sessions may end as "gateway dead" (decided by the
# liveness rule); elsewhere that would be a live gateway expired.
if sys.argv[3] == 'exact' and reasons.get('gateway_dead', 0):
    bad.append(f"{reasons['gateway_dead']} sessions ended as gateway_dead, but no gateway died")
for sid, n in sorted(current.items()):
    if n != 0:
        bad.append(f"stream {sid}: current_viewers.viewer_count {n}, truth 0")
print(f"user_sessions: {sum(rows.values())} rows for {sum(s['connections'] for s in r['streams'])} connections; reasons {reasons}")
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
    }
    mode=exact
    [[ $CASE == gateway_kill ]] && mode=atmost
    t0=$SECONDS
    deadline=$((SECONDS + 40))
    until out=$(db_compare $mode); do
        if ((SECONDS >= deadline)); then
            break
        fi
        sleep 1
    done
    if db_compare $mode >/dev/null; then
        echo "ok - database after $((SECONDS - t0))s: $out"
    else
        echo "not ok - database rows after everyone left ($mode):"
        printf '%s\n' "$out" | sed 's/^/#   /'
        cat "$VC_STACK_DIR/db.err" 2>/dev/null | head -5
        failed=1
    fi
fi

# The database equals the reference run's, row by row. The gateways stop
# first (they heartbeat into every partition), so that the log ends and both
# sinks can reach its end; then both must have stored the end offsets.
mark "stopping the gateways"
for i in 0 1; do "$STACK" stop gateway $i >/dev/null 2>&1 || true; done
mark "waiting for both sinks"
t0=$SECONDS
deadline=$((SECONDS + 45))
caught=0
while ((SECONDS < deadline)); do
    if a=$(python3 "$CHECK" offsets "$VC_MYSQL_DB" vc-sink) &&
        b=$(python3 "$CHECK" offsets vc_ref vc-sink-ref); then
        caught=1
        break
    fi
    sleep 0.5
done
if ((caught)); then
    echo "ok - both sinks at the end of the log after $((SECONDS - t0))s"
    if python3 "$CHECK" db-compare "$VC_MYSQL_DB" vc_ref "$VC_STACK_DIR/db-compare.json"; then
        echo "ok - the database equals the reference run's (same log, no fault)"
    else
        echo "not ok - the database differs from the reference run's (DIFF lines above: value vs reference)"
        failed=1
    fi
else
    echo "not ok - the sinks did not reach the end of the log within 45 s (case: ${a:-?}, reference: ${b:-?})"
    tail -n 5 "$VC_STACK_DIR/log/sink-ref.log" 2>/dev/null
    failed=1
fi
"$REPO/tests/e2e/refsink.sh" stop || true
mark "compared"

# Sanitizer findings in any service.
if grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$VC_STACK_DIR"/log/*.log 2>/dev/null; then
    echo "not ok - a service reported a sanitizer error (logs above)"
    grep -h -A20 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$VC_STACK_DIR"/log/*.log | head -60
    failed=1
fi

# The case's result (tests/e2e/table.py collects them into the README's table).
python3 "$CHECK" result "$RESULTS/$CASE.json" "$CASE" "$fault" "$REPORT" "${rec[0]}" "${rec[1]:-0}" \
    "${rec[2]:-}" "$VC_STACK_DIR/recovery.db" "$VC_STACK_DIR/redis-leftovers.json" \
    "$VC_STACK_DIR/db-compare.json" $((failed ? 0 : 1)) $((SECONDS - t_case)) || true
python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
print(f\"# recovery: {r['recovery_seconds']} s ({r['recovery_kind']}); counts exact: {r['counts_exact']}; \"
      f\"db equal: {r['db_equal']}; leftovers: {r['leftovers']}; {r['wall_seconds']} s\")" "$RESULTS/$CASE.json" || true

if ((failed)); then
    for c in gateway-0 gateway-1 aggregator-0 sink sink-ref; do
        [[ -f $VC_STACK_DIR/log/$c.log ]] || continue
        echo "--- last lines of $c.log"
        tail -n 15 "$VC_STACK_DIR/log/$c.log"
    done
    echo "# e2e $CASE FAILED (stack dir $VC_STACK_DIR kept)"
    exit 1
fi
echo "# e2e $CASE passed"
rm -rf "$VC_STACK_DIR/redis" "$VC_STACK_DIR/mariadb"
