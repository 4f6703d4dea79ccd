#!/usr/bin/env bash
# The local stack's life cycle, against the real servers it starts:
# up, the env's coordinates answer, replication, up twice, broker faults,
# a Redis failover, two stacks side by side, a port conflict named, down
# leaves nothing, up after down.
#
# usage: test_stack.sh BUILD_DIR [PORT_BASE]   (uses PORT_BASE, +100, +200)
set -uo pipefail

BUILD=$(realpath "${1:?usage: test_stack.sh BUILD_DIR [PORT_BASE]}")
BASE=${2:-31000}
. "$(dirname "$0")/lib.sh"
require_build

WORK=$BUILD/tests/stack-work/lifecycle
A=$BASE B2=$((BASE + 100)) C=$((BASE + 200))
LISTENER=

cleanup() {
    [[ -n $LISTENER ]] && kill "$LISTENER" 2>/dev/null
    stack_in a "$A" down >/dev/null 2>&1
    stack_in b "$B2" down >/dev/null 2>&1
    stack_in c "$C" down >/dev/null 2>&1
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK"

# ---- up, and every coordinate of `env` answers
if ! out=$(stack_in a "$A" up --infra 2>&1); then
    not_ok "stack up (port base $A)" "$out"
    finish
fi
ok "stack up (port base $A)"

envfile=$WORK/a.env
stack_in a "$A" env >"$envfile"
check "env has every contract variable" bash -c "
    for k in VC_KAFKA_BROKERS VC_REDIS_NODES VC_MYSQL_HOST VC_MYSQL_PORT VC_MYSQL_USER \
             VC_MYSQL_PASSWORD VC_MYSQL_DB VC_MYSQL_READER_HOST VC_MYSQL_READER_PORT \
             VC_MYSQL_ANALYST_USER VC_MYSQL_ANALYST_PASSWORD VC_TOKEN_SECRET VC_GATEWAY_WS \
             VC_GATEWAY_HTTP VC_EVENTS_TOPIC VC_DLQ_TOPIC VC_CHECKPOINT_TOPIC VC_STACK_DIR \
             VC_PORT_BASE VC_BUILD_DIR; do
        grep -q \"^\$k=.\" '$envfile' || { echo \"missing \$k\"; exit 1; }
    done"
# Shell variables only (not exported): the stacks started below must not see them.
. "$envfile"
{

    meta=$(kcat -L -b "$VC_KAFKA_BROKERS" -m 10 2>&1)
    check "kcat -L lists 3 brokers" grep -q ' 3 brokers:' <<<"$meta"
    check "vc.events has 12 partitions" grep -q 'topic "vc.events" with 12 partitions' <<<"$meta"
    check "vc.events.dlq has 3 partitions" grep -q 'topic "vc.events.dlq" with 3 partitions' <<<"$meta"
    check "vc.aggregator.checkpoints has 12 partitions" \
        grep -q 'topic "vc.aggregator.checkpoints" with 12 partitions' <<<"$meta"
    first_broker=${VC_KAFKA_BROKERS%%,*}

    IFS=, read -r -a nodes <<<"$VC_REDIS_NODES"
    check "VC_REDIS_NODES has 6 nodes" test "${#nodes[@]}" -eq 6
    for node in "${nodes[@]}"; do
        info=$(redis-cli -c -h "${node%:*}" -p "${node#*:}" cluster info 2>&1 | tr -d '\r')
        check "redis $node: cluster_state:ok, 6 known nodes" \
            bash -c 'grep -qx cluster_state:ok <<<"$1" && grep -qx cluster_known_nodes:6 <<<"$1"' _ "$info"
    done
    roles=$(redis-cli -h 127.0.0.1 -p "$VC_PORT_BASE" cluster nodes | awk '{print $2, $3}' | sed 's/@[0-9]*//; s/myself,//' | sort)
    expect=$(for i in 0 1 2; do echo "127.0.0.1:$((VC_PORT_BASE + i)) master"; done
             for i in 3 4 5; do echo "127.0.0.1:$((VC_PORT_BASE + i)) slave"; done)
    check "masters on B+0..2, replicas on B+3..5" test "$roles" == "$expect"
    check "a key written through the cluster reads back" bash -c "
        redis-cli -c -p $VC_PORT_BASE set stack:test:{42} hello >/dev/null &&
        test \"\$(redis-cli -c -p $((VC_PORT_BASE + 4)) get stack:test:{42})\" = hello"

    w() { MYSQL_PWD=$VC_MYSQL_PASSWORD mariadb -h "$VC_MYSQL_HOST" -P "$VC_MYSQL_PORT" -u "$VC_MYSQL_USER" "$VC_MYSQL_DB" -N -B "$@"; }
    r() { MYSQL_PWD=$VC_MYSQL_ANALYST_PASSWORD mariadb -h "$VC_MYSQL_READER_HOST" \
            -P "$VC_MYSQL_READER_PORT" -u "$VC_MYSQL_ANALYST_USER" "$VC_MYSQL_DB" -N -B "$@"; }
    check "mariadb SELECT on the writer as $VC_MYSQL_USER" test "$(w -e 'SELECT 1 + 1')" = 2
    check "the writer is server 1, writable" test "$(w -e 'SELECT @@server_id, @@read_only')" = "1	0"
    check "the replica is server 2, read only" test "$(r -e 'SELECT @@server_id, @@read_only')" = "2	1"
    # The operator's writes: the sink's user may write only the sink's tables (sql/roles.sql).
    adm() { stack_in a "$A" mysql admin -D "$VC_MYSQL_DB" -N -B "$@"; }
    token=$RANDOM$RANDOM
    check "a row written on the writer" adm -e "CREATE TABLE IF NOT EXISTS stack_test_replication (token VARCHAR(32) PRIMARY KEY); INSERT INTO stack_test_replication VALUES ('$token')"
    check "... appears on the replica (GTID replication)" \
        eventually 15 bash -c "test \"\$(MYSQL_PWD=$VC_MYSQL_ANALYST_PASSWORD mariadb -h 127.0.0.1 -P $VC_MYSQL_READER_PORT -u $VC_MYSQL_ANALYST_USER $VC_MYSQL_DB -N -B -e \"SELECT token FROM stack_test_replication WHERE token = '$token'\")\" = $token"
    check_fails "the analyst cannot write on the writer" bash -c "MYSQL_PWD=$VC_MYSQL_ANALYST_PASSWORD mariadb -h 127.0.0.1 -P $VC_MYSQL_PORT -u $VC_MYSQL_ANALYST_USER $VC_MYSQL_DB -e \"INSERT INTO stack_test_replication VALUES ('x')\""
    check "schema_migrations exists (the runner ran)" adm -e 'SELECT COUNT(*) FROM schema_migrations'

    # ---- broker fault control
    check "stack broker down 1" stack_in a "$A" broker down 1
    check_fails "broker 1 refuses metadata while down" kcat -L -b "$first_broker" -m 2
    check "stack broker up 1" stack_in a "$A" broker up 1
    check "broker 1 answers metadata again" eventually 10 kcat -L -b "$first_broker" -m 2
    check "stack broker leader vc.events 0 2" stack_in a "$A" broker leader vc.events 0 2
    check "metadata shows partition 0 led by broker 2" bash -c \
        "kcat -L -b '$VC_KAFKA_BROKERS' -t vc.events -m 5 | grep -q 'partition 0, leader 2,'"
    check_fails "an unknown broker command is an error" stack_in a "$A" broker explode 1
    # ---- the events topic's partition count is configurable (checked on stack b below)
}

# ---- up twice starts no second copy
before=$(live_pids_under "$WORK/a" | sort)
check "stack a runs 9 processes (6 redis, 2 mariadbd, broker)" test "$(wc -l <<<"$before")" -eq 9
check "up again succeeds" stack_in a "$A" up --infra
after=$(live_pids_under "$WORK/a" | sort)
check "up twice starts no second copy (same pids)" test "$before" == "$after"

# ---- a killed Redis master is replaced by its replica
check "stack kill redis 0" stack_in a "$A" kill redis 0
check "its replica (B+3) becomes master" eventually 20 bash -c \
    "redis-cli -p $((A + 3)) info replication | tr -d '\r' | grep -qx role:master"
check "the cluster is ok again without node 0" eventually 20 bash -c \
    "redis-cli -p $((A + 3)) cluster info | tr -d '\r' | grep -qx cluster_state:ok"
check "stack start redis 0 (rejoins)" stack_in a "$A" start redis 0
check "node 0 rejoins as a replica" eventually 20 bash -c \
    "redis-cli -p $A info replication | tr -d '\r' | grep -qx role:slave"

# ---- a second stack side by side, with 4 partitions on the events topic
if out=$(VC_EVENTS_PARTITIONS=4 stack_in b "$B2" up --infra 2>&1); then
    ok "a second stack up beside the first (port base $B2)"
    benv=$(stack_in b "$B2" env)
    bbrokers=$(sed -n 's/^VC_KAFKA_BROKERS=//p' <<<"$benv")
    abrokers=$(sed -n 's/^VC_KAFKA_BROKERS=//p' "$envfile")
    check "the two stacks have different brokers" test "$abrokers" != "$bbrokers"
    check "stack b's vc.events has 4 partitions" bash -c \
        "kcat -L -b '$bbrokers' -m 10 | grep -q 'topic \"vc.events\" with 4 partitions'"
    check "stack b's redis cluster is ok" bash -c \
        "redis-cli -p $B2 cluster info | tr -d '\r' | grep -qx cluster_state:ok"
    check "stack b's writer answers" bash -c \
        "VC_STACK_DIR=$WORK/b '$STACK' mysql writer -N -e 'SELECT @@port' | grep -qx $((B2 + 10))"
    check "stack a still answers" bash -c \
        "redis-cli -p $((A + 1)) cluster info | tr -d '\r' | grep -qx cluster_state:ok"
else
    not_ok "a second stack up beside the first (port base $B2)" "$out"
fi

# ---- a component that cannot start is named
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $((C + 10)))); s.listen(1); time.sleep(120)" &
LISTENER=$!
eventually 10 bash -c "ss -Hltn 'sport = :$((C + 10))' | grep -q ."
if out=$(stack_in c "$C" up --infra 2>&1); then
    not_ok "up fails when the writer's port is taken" "$out"
else
    ok "up fails when the writer's port is taken"
    check "the error names mariadb and its port" grep -q "error: mariadb failed to start: port $((C + 10))" <<<"$out"
fi
kill "$LISTENER" 2>/dev/null
wait "$LISTENER" 2>/dev/null
LISTENER=
check "down after a failed up" stack_in c "$C" down
check "nothing of stack c runs" test -z "$(live_pids_under "$WORK/c")"

# ---- one database user for two services is refused (its role would replace the other's)
rm -rf "$WORK/c"
if out=$(VC_MYSQL_GATEWAY_USER=vc_sink stack_in c "$C" up --infra 2>&1); then
    not_ok "up refuses the sink's user for the gateway" "$out"
else
    ok "up refuses the sink's user for the gateway"
    check "the error names both settings" grep -q "VC_MYSQL_GATEWAY_USER and VC_MYSQL_USER are both 'vc_sink'" <<<"$out"
fi
check "down after the refused up" stack_in c "$C" down

# ---- keys in the nodes' RDB files (a replica writes one at every full sync)
# must not stop the next up from forming a fresh cluster
check "a key, saved to disk by every node" bash -c "
    redis-cli -c -p $A set stack:test:rdb 1 >/dev/null && sleep 1 &&
    for p in \$(seq $A $((A + 5))); do redis-cli -p \$p save | grep -q OK || exit 1; done"

# ---- down leaves nothing; the other stack is untouched
apids=$(live_pids_under "$WORK/a")
check "stack a down" stack_in a "$A" down
left=""
for pid in $apids; do pid_alive "$pid" && left+=" $pid"; done
check "no process of stack a is left (by pid)" test -z "$left"
check "no process mentions stack a's dir" test -z "$(live_pids_under "$WORK/a")"
check "no listener left on stack a's ports" bash -c "
    for p in \$(seq $A $((A + 5))) $((A + 10)) $((A + 11)) \$(seq $((A + 12)) $((A + 17))) \$(seq $((A + 45)) $((A + 47))); do
        ss -Hltn \"sport = :\$p\" | grep -q . && { echo \"port \$p still listening\"; exit 1; }
    done; exit 0"
check "no pid files left" bash -c "! ls '$WORK/a/run/'*.pid 2>/dev/null | grep -q ."
check "stack b is untouched by a's down" test "$(live_pids_under "$WORK/b" | wc -l)" -eq 9
check "stack a status shows nothing running" bash -c "! VC_STACK_DIR='$WORK/a' '$STACK' status | grep -q running"

# ---- up after down
if out=$(stack_in a "$A" up --infra 2>&1); then
    ok "up after down"
    check "redis answers after up-after-down" bash -c \
        "redis-cli -p $((A + 2)) cluster info | tr -d '\r' | grep -qx cluster_state:ok"
    check "the writer kept its data" bash -c \
        "VC_STACK_DIR=$WORK/a '$STACK' mysql admin -D '$VC_MYSQL_DB' -N -e 'SELECT COUNT(*) FROM stack_test_replication' | grep -qx 1"
    check "the broker answers after up-after-down" bash -c \
        "kcat -L -b \"\$(VC_STACK_DIR=$WORK/a '$STACK' env | sed -n 's/^VC_KAFKA_BROKERS=//p')\" -m 10 | grep -q 'topic \"vc.events\" with 12'"
else
    not_ok "up after down" "$out"
fi

check "stack a down (again)" stack_in a "$A" down
check "stack b down" stack_in b "$B2" down
check "nothing of any test stack runs" test -z "$(live_pids_under "$WORK")"
finish
