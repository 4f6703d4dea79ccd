#!/usr/bin/env bash
# `stack up` with the services built: each runs with the env of `stack env`
# plus its own id and port, listens where the layout says, and is handled
# by start/kill/up/down like the infrastructure.
#
# usage: test_services.sh BUILD_DIR [PORT_BASE]
set -uo pipefail

BUILD=$(realpath "${1:?usage: test_services.sh BUILD_DIR [PORT_BASE]}")
BASE=${2:-31400}
. "$(dirname "$0")/lib.sh"
require_build
for bin in gateway/vc-gateway aggregator/vc-aggregator sink/vc-sink; do
    [[ -x $BUILD/$bin ]] || { echo "not ok - $BUILD/$bin is not built"; exit 1; }
done

WORK=$BUILD/tests/stack-work/services
trap 'stack_in s "$BASE" down >/dev/null 2>&1' EXIT
stack_in s "$BASE" down >/dev/null 2>&1
rm -rf "$WORK"
mkdir -p "$WORK"

if ! out=$(VC_GATEWAYS=2 stack_in s "$BASE" up 2>&1); then
    not_ok "stack up with 2 gateways, an aggregator and the sink" "$out"
    finish
fi
ok "stack up with 2 gateways, an aggregator and the sink"

status=$(stack_in s "$BASE" status)
for c in gateway-0 gateway-1 aggregator-0 sink; do
    check "$c runs" grep -Eq "^$c +running" <<<"$status"
done
pid_of() { cat "$WORK/s/run/$1.pid"; }
environ_has() { tr '\0' '\n' <"/proc/$(pid_of "$1")/environ" | grep -qx "$2"; }
brokers=$(stack_in s "$BASE" env | sed -n 's/^VC_KAFKA_BROKERS=//p')
check "gateway-0 has VC_GATEWAY_ID=gw-0" environ_has gateway-0 VC_GATEWAY_ID=gw-0
check "gateway-1 has VC_GATEWAY_ID=gw-1, port B+21" bash -c \
    "tr '\0' '\n' </proc/$(pid_of gateway-1)/environ | grep -qx VC_GATEWAY_ID=gw-1 &&
     tr '\0' '\n' </proc/$(pid_of gateway-1)/environ | grep -qx VC_GATEWAY_PORT=$((BASE + 21))"
check "aggregator-0 has VC_AGGREGATOR_HTTP_PORT=B+30" environ_has aggregator-0 "VC_AGGREGATOR_HTTP_PORT=$((BASE + 30))"
check "the sink has VC_SINK_HTTP_PORT=B+40" environ_has sink "VC_SINK_HTTP_PORT=$((BASE + 40))"
check "the sink has the env's VC_KAFKA_BROKERS" environ_has sink "VC_KAFKA_BROKERS=$brokers"
check "gateway-0 connects to MariaDB as vc_gateway" environ_has gateway-0 VC_MYSQL_USER=vc_gateway
check "aggregator-0 connects to MariaDB as vc_aggregator" environ_has aggregator-0 VC_MYSQL_USER=vc_aggregator
check "only the gateways hold the token secret" bash -c "
    tr '\\0' '\\n' </proc/$(pid_of gateway-0)/environ | grep -q '^VC_TOKEN_SECRET=.' &&
    ! tr '\\0' '\\n' </proc/$(pid_of aggregator-0)/environ | grep -q '^VC_TOKEN_SECRET=' &&
    ! tr '\\0' '\\n' </proc/$(pid_of sink)/environ | grep -q '^VC_TOKEN_SECRET='"
check "the sink has VC_MYSQL_USER=vc_sink" environ_has sink VC_MYSQL_USER=vc_sink
for p in $((BASE + 20)) $((BASE + 21)) $((BASE + 30)) $((BASE + 40)); do
    check "port $p listens" bash -c "ss -Hltn 'sport = :$p' | grep -q ."
done
check "no secret in the logs" bash -c "! grep -rq \"\$(sed -n 's/^VC_TOKEN_SECRET=//p' '$WORK/s/secrets.env')\" '$WORK/s/log'"

# A killed service is restarted by `up`, alone.
before=$(for c in gateway-0 aggregator-0 sink redis-0 mariadb broker; do pid_of "$c"; done)
check "stack kill gateway 1" stack_in s "$BASE" kill gateway 1
check "gateway-1 is reported stopped" bash -c "VC_STACK_DIR='$WORK/s' '$STACK' status | grep -Eq '^gateway-1 +stopped'"
check "up restarts it" stack_in s "$BASE" up
check "gateway-1 runs again" bash -c "VC_STACK_DIR='$WORK/s' '$STACK' status | grep -Eq '^gateway-1 +running'"
after=$(for c in gateway-0 aggregator-0 sink redis-0 mariadb broker; do pid_of "$c"; done)
check "the other components kept their pids" test "$before" == "$after"
check "stack stop sink" stack_in s "$BASE" stop sink
check "stack start sink" stack_in s "$BASE" start sink

pids=$(cat "$WORK/s/run/"*.pid)
check "stack down" stack_in s "$BASE" down
left=""
for pid in $pids; do pid_alive "$pid" && left+=" $pid"; done
check "no process of the stack is left" test -z "$left"
finish
