#!/usr/bin/env bash
# tests/browser/browser_test.sh BUILD_DIR PORT_BASE
#
# The web page in a real browser. A private full stack (Redis Cluster,
# MariaDB writer + replica, the broker, 2 gateways serving gateway/web with
# anonymous viewers allowed, the aggregator, the sink) from BUILD_DIR on
# PORT_BASE, demo master data for streams 1000..1011, and vc-loadgen holding
# 600 viewers on them as the ground truth: no churn, so once its first
# checkpoint has converged (pushed counts, GET /api/streams/<id> on every
# gateway and Redis all equal to its truth) the truth stays put. Then
# Debian's Chromium (headless, driven by Playwright core from npm,
# browser_test.js) checks that:
#   - the board lists the streams in the order of the truth (ties compared as
#     sets of equal counts), overall and for one category;
#   - a stream page reaches the true count (plus itself: an anonymous page is
#     one viewer per connection);
#   - after kill -9 of the gateway under that page, the page reconnects (to
#     the other gateway) and shows the true count again; a board loaded from
#     that gateway moves itself to the other one;
#   - while Redis does not answer (CLIENT PAUSE on every node) the page shows
#     its last count as stale, then live again;
#   - a page with ?token=<JWT> is one more (distinct) viewer, one with a
#     forged token says the gateway refused it.
# The truth the browser is held to is read from GET /api/streams/<id> after
# the loadgen's checkpoint, and checked afterwards against the loadgen's own
# per-stream truth in its report. Screenshots are saved under
# BUILD_DIR/tests/browser-work/shots/. Installs Chromium (apt, as root) and
# playwright-core (npm, under BUILD_DIR) when missing.
set -euo pipefail

BUILD=$(realpath "${1:?usage: browser_test.sh BUILD_DIR PORT_BASE}")
BASE=${2:?port base}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=$REPO/deploy/local/stack
LG=$BUILD/tests/load/vc-loadgen
WORK=$BUILD/tests/browser-work
NODE_DIR=$BUILD/tests/browser-node
CHROMIUM=${VC_CHROMIUM:-/usr/bin/chromium}
FIRST=1000
NSTREAMS=12

say() { printf '# %s\n' "$*"; }
bail() { printf 'not ok - %s\n' "$*"; exit 1; }

# ---- what the test needs: Chromium, Node.js with npm, playwright-core
apt_install() {
    ((EUID == 0)) || bail "$* missing: as root run 'apt-get install -y $*' (or deploy/local/stack deps)"
    say "installing $* (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null; } ||
        bail "apt-get install $* failed"
}
[[ -x $CHROMIUM ]] || apt_install chromium
[[ -x $CHROMIUM ]] || bail "$CHROMIUM is not there after installing chromium"
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
# playwright-core 1.62+ needs Node.js 20; Debian 12's own nodejs is 18.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major >= 20)); then PLAYWRIGHT_VERSION=1.65.1; else PLAYWRIGHT_VERSION=1.61.1; fi
installed=$(node -p "require('$NODE_DIR/node_modules/playwright-core/package.json').version" 2>/dev/null) || installed=
if [[ $installed != "$PLAYWRIGHT_VERSION" ]]; then
    say "installing playwright-core@$PLAYWRIGHT_VERSION (npm) into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    [[ -f $NODE_DIR/package.json ]] || echo '{"private": true}' >"$NODE_DIR/package.json"
    # Playwright core only: no browser download, the system Chromium is used.
    (cd "$NODE_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error \
        "playwright-core@$PLAYWRIGHT_VERSION") >"$NODE_DIR/npm.log" 2>&1 ||
        { cat "$NODE_DIR/npm.log"; bail "npm install playwright-core failed"; }
fi

for bin in "$LG" "$BUILD/gateway/vc-gateway" "$BUILD/aggregator/vc-aggregator" "$BUILD/sink/vc-sink" \
           "$BUILD/deploy/local/vc-broker"; do
    [[ -x $bin ]] || bail "$bin is not built (cmake --build $BUILD)"
done

# ---- the private stack
for v in $(compgen -e | grep '^VC_'); do unset "$v"; done
export VC_BUILD_DIR=$BUILD VC_PORT_BASE=$BASE VC_GATEWAYS=2 VC_AGGREGATORS=1
export VC_STACK_DIR=$WORK/stack
# The page is served by the gateways and watches without a token.
export VC_GATEWAY_WEB_ROOT=$REPO/gateway/web VC_ALLOW_ANONYMOUS=1
# The titles the page shows are read from MariaDB every 2 s (not 10).
export VC_GATEWAY_CATALOG_SECONDS=2
# A killed gateway's viewers leave the counts within the case: heartbeats
# every 2 s, a gateway silent for 8 s of event time is dropped.
export VC_HEARTBEAT_SECONDS=2 VC_GATEWAY_TIMEOUT_MS=8000
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

LG_PID=
cleanup() {
    local rc=$?
    [[ -n $LG_PID ]] && kill -TERM "$LG_PID" 2>/dev/null && wait "$LG_PID" 2>/dev/null
    "$STACK" down >/dev/null 2>&1 || true
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$STACK" down >/dev/null 2>&1 || true
rm -rf "$WORK/stack" "$WORK/shots" "$WORK"/*.json "$WORK"/*.log "$WORK/checkpoint.passed"
mkdir -p "$WORK/shots"
t0=$SECONDS
"$STACK" up
"$STACK" demo-data "$FIRST" "$NSTREAMS"
# Closed 5-minute rollups of every demo stream for the last half hour (the
# run is shorter than a bucket, so the sink writes at most one itself): the
# stream page must draw them from /api/streams/<id>/history (the gateways
# read the replica) before the live counts. Inserted as the sink's user.
HISTORY_BUCKETS=6
"$STACK" mysql writer -e "SET time_zone = '+00:00';
  INSERT INTO viewer_history (stream_id, recorded_at, bucket_seconds, peak_viewers, min_viewers, avg_viewers,
                              joins, leaves, distinct_viewers, watch_seconds)
  SELECT s.stream_id, FROM_UNIXTIME(b.t - b.t % 300 - 300 * k.k), 300, 10 * k.k + 5, k.k, 10 * k.k, k.k, k.k,
         10 * k.k + 5, 3000 * k.k
  FROM streams s
  JOIN (SELECT UNIX_TIMESTAMP() AS t) b
  JOIN (SELECT 1 AS k UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6) k
  WHERE s.stream_id BETWEEN $FIRST AND $((FIRST + NSTREAMS - 1))
  ON DUPLICATE KEY UPDATE avg_viewers = VALUES(avg_viewers)" || bail "cannot seed viewer_history"
set -a
# shellcheck disable=SC1090
source <("$STACK" env)
set +a
GW0=http://127.0.0.1:$((BASE + 20))
GW1=http://127.0.0.1:$((BASE + 21))

# ---- the viewers and the ground truth
# No churn and no refreshes: after the ramp the truth does not change (second
# tabs open and close but a user counts once). The checkpoint at 4 s proves
# that the system has converged to it; the --at command at 6 s (load time,
# which stops during a checkpoint) tells this script so. The load lasts long
# enough for the browser's part, which closes its page before the end.
REPORT=$WORK/report.json
say "vc-loadgen: 600 viewers over $NSTREAMS streams"
"$LG" --seed 11 --viewers 600 --streams "$NSTREAMS" --stream-base "$FIRST" --zipf 1.0 --churn-seconds 0 \
    --tabs-fraction 0.3 --refresh-fraction 0 --duration 85 --checkpoints 4 --converge-timeout 30 \
    --at "6:touch $WORK/checkpoint.passed" --progress 10 --report "$REPORT" >"$WORK/loadgen.log" 2>&1 &
LG_PID=$!
deadline=$((SECONDS + 60))
until [[ -e $WORK/checkpoint.passed ]]; do
    kill -0 "$LG_PID" 2>/dev/null || { cat "$WORK/loadgen.log"; bail "vc-loadgen exited before its first checkpoint"; }
    ((SECONDS < deadline)) || { cat "$WORK/loadgen.log"; bail "no checkpoint within 60 s"; }
    sleep 0.2
done
grep -q 'MISMATCH' "$WORK/loadgen.log" && { cat "$WORK/loadgen.log"; bail "the first checkpoint did not converge"; }

# The truth as the loadgen's checkpoint verified it (GET /api/streams/<id>
# equals its truth on every gateway), and each stream's category.
"$STACK" mysql writer -N -B -e "SELECT stream_id, title FROM streams WHERE stream_id BETWEEN $FIRST AND $((FIRST + NSTREAMS - 1))" \
    >"$WORK/titles.tsv"
python3 - "$GW0" "$FIRST" "$NSTREAMS" "$WORK/truth.json" "$WORK/titles.tsv" <<'PY'
import json, sys, urllib.request
gw, first, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
titles = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[5]) if line.strip())
truth = {}
for sid in range(first, first + n):
    with urllib.request.urlopen(f"{gw}/api/streams/{sid}", timeout=10) as r:
        m = json.load(r)
    if m.get("status") != "live":
        sys.exit(f"stream {sid}: {m}")
    truth[sid] = m["viewers"]
# The demo data's categories: 1 + id % 6 (deploy/local/stack demo_data).
json.dump({"streams": [{"stream": s, "viewers": v, "category": 1 + s % 6, "title": titles[str(s)]}
                      for s, v in truth.items()]},
          open(out, "w"))
print("# truth:", " ".join(f"{s}={v}" for s, v in sorted(truth.items(), key=lambda kv: -kv[1])))
PY

# Both gateways' catalogs have read the demo data.
for gw in "$GW0" "$GW1"; do
    deadline=$((SECONDS + 20))
    until curl -fsS "$gw/api/catalog" 2>/dev/null | grep -q "\"stream\":$((FIRST + NSTREAMS - 1)),"; do
        ((SECONDS < deadline)) || bail "$gw/api/catalog does not list the demo streams after 20 s"
        sleep 0.5
    done
done

# ---- the browser
say "Chromium $("$CHROMIUM" --version 2>/dev/null | awk '{print $2}') headless, playwright-core $PLAYWRIGHT_VERSION"
brc=0
NODE_PATH=$NODE_DIR/node_modules timeout -k 5 90 node "$REPO/tests/browser/browser_test.js" \
    --chromium "$CHROMIUM" --gw0 "$GW0" --gw1 "$GW1" --truth "$WORK/truth.json" --shots "$WORK/shots" \
    --kill "$STACK kill gateway 1" \
    --pause "for p in $(seq -s ' ' "$BASE" $((BASE + 5))); do redis-cli -p \$p CLIENT PAUSE 6000 ALL >/dev/null; done" \
    --token "$("$BUILD/gateway/vc-gateway" token --user 900000001 --ttl 600)" \
    --expiry-ms "$VC_GATEWAY_TIMEOUT_MS" --history "$HISTORY_BUCKETS" --result "$WORK/browser.json" || brc=$?
((brc == 0)) || say "the browser part failed (exit $brc)"

# ---- the loadgen's verdict and its own truth
lrc=0
wait "$LG_PID" || lrc=$?
LG_PID=
failed=0
if ((brc != 0)); then failed=1; fi
if ((lrc != 0)); then
    echo "not ok - vc-loadgen exited $lrc"
    tail -n 30 "$WORK/loadgen.log"
    failed=1
else
    echo "ok - vc-loadgen: every checkpoint converged ($(grep -c '' "$WORK/loadgen.log") log lines)"
fi
if [[ -s $REPORT ]]; then
    if python3 - "$REPORT" "$WORK/truth.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = {s["stream"]: s["viewers"] for s in json.load(open(sys.argv[2]))["streams"]}
# With no churn and no refreshes a stream's truth only grows during the ramp
# and then stays: its peak is the truth the browser was held to.
peak = {s["stream"]: s["truth_peak"] for s in r["streams"] if s["stream"] in t}
bad = [f"stream {s}: browser held to {t[s]}, loadgen truth {peak.get(s)}" for s in t if peak.get(s) != t[s]]
for b in bad:
    print("#   " + b)
sys.exit(1 if bad or r["result"] != "pass" else 0)
PY
    then
        echo "ok - the truth the browser was held to is the loadgen's ground truth"
    else
        echo "not ok - the truth the browser was held to differs from the loadgen's report"
        failed=1
    fi
else
    echo "not ok - no loadgen report"
    failed=1
fi
if grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$VC_STACK_DIR"/log/*.log 2>/dev/null; then
    echo "not ok - a service reported a sanitizer error (logs above)"
    failed=1
fi
say "screenshots:"
ls -1 "$WORK"/shots/*.png 2>/dev/null | sed 's/^/#   /'
say "took $((SECONDS - t0)) s"
if ((failed)); then
    for c in gateway-0 gateway-1; do
        [[ -f $VC_STACK_DIR/log/$c.log ]] && { echo "--- last lines of $c.log"; tail -n 10 "$VC_STACK_DIR/log/$c.log"; }
    done
    echo "not ok - browser_demo"
    exit 1
fi
echo "ok - browser_demo"
