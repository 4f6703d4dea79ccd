#!/usr/bin/env bash
# tests/e2e/refsink.sh prepare|start|stop: the reference run of an e2e case. A second
# vc-sink reads the same events topic from the beginning, in its own consumer
# group (vc-sink-ref), into a fresh database (vc_ref) on the same MariaDB:
# schema applied with sql/migrate and roles with sql/roles.sql as
# `deploy/local/stack up` does, master data copied from the case's database
# as the administrator. It never sees a fault, so its rows are what a run
# without the fault writes from the same log (tests/e2e/check.py db-compare).
# Runs with the stack's environment exported (e2e.sh); pid and log in the
# stack dir (run/sink-ref.pid, log/sink-ref.log).
#   prepare   the database, its users, the schema and the roles (before the load)
#   start     copy the master data, start the sink (after the load)
#   stop      SIGTERM, then SIGKILL after 5 s
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${VC_STACK_DIR:?run with the stack environment}"
REF_DB=${VC_E2E_REF_DB:-vc_ref}
REF_GROUP=${VC_E2E_REF_GROUP:-vc-sink-ref}
PIDFILE=$VC_STACK_DIR/run/sink-ref.pid
LOG=$VC_STACK_DIR/log/sink-ref.log

admin() { mariadb --defaults-file="$VC_STACK_DIR/mariadb/writer/my.cnf" "$@"; } # = stack mysql admin

case ${1:-} in
prepare)
    # The fresh database and its own users (the roles of sql/roles.sql get the
    # same grants on it; the case's users are left alone). The password goes
    # to start through a file of the stack dir.
    : "${VC_MYSQL_DB:?}"
    [[ $REF_DB != "$VC_MYSQL_DB" ]] || { echo "refsink: the reference database must not be $VC_MYSQL_DB" >&2; exit 1; }
    pw=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    admin <<SQL
DROP DATABASE IF EXISTS \`$REF_DB\`;
CREATE DATABASE \`$REF_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'vc_sink_ref'@'%' IDENTIFIED BY '$pw';
ALTER USER 'vc_sink_ref'@'%' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'analyst_ref'@'%' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'vc_gateway_ref'@'%' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'vc_aggregator_ref'@'%' IDENTIFIED BY '$pw';
SQL
    (umask 077; echo "$pw" >"$VC_STACK_DIR/run/sink-ref.pw")
    # As the administrator (the defaults file's [client] group): without the
    # stack's VC_MYSQL_* in the environment, which sql/migrate would prefer.
    env -u VC_MYSQL_HOST -u VC_MYSQL_PORT -u VC_MYSQL_USER -u VC_MYSQL_PASSWORD \
        "$REPO/sql/migrate" --defaults-file "$VC_STACK_DIR/mariadb/writer/my.cnf" --database "$REF_DB" >>"$LOG" 2>&1 ||
        { echo "refsink: sql/migrate on $REF_DB failed (see $LOG)" >&2; exit 1; }
    sed -e "s/@DB@/$REF_DB/g" -e "s/@SINK_USER@/vc_sink_ref/g" -e "s/@ANALYST_USER@/analyst_ref/g" \
        -e "s/@GATEWAY_USER@/vc_gateway_ref/g" -e "s/@AGGREGATOR_USER@/vc_aggregator_ref/g" \
        "$REPO/sql/roles.sql" | admin
    ;;
start)
    : "${VC_BUILD_DIR:?}" "${VC_PORT_BASE:?}" "${VC_MYSQL_DB:?}"
    [[ -s $VC_STACK_DIR/run/sink-ref.pw ]] || { echo "refsink: run 'refsink.sh prepare' first" >&2; exit 1; }
    # The master data the case's sink looks up (streams' broadcaster and
    # category), in foreign-key order.
    admin -e "$(for t in categories broadcasters users streams; do
        echo "INSERT INTO \`$REF_DB\`.\`$t\` SELECT * FROM \`$VC_MYSQL_DB\`.\`$t\`;"; done)"
    VC_MYSQL_USER=vc_sink_ref VC_MYSQL_PASSWORD=$(cat "$VC_STACK_DIR/run/sink-ref.pw") VC_MYSQL_DB=$REF_DB \
        VC_SINK_GROUP=$REF_GROUP VC_SINK_ID=sink-ref VC_SINK_HTTP_PORT=$((VC_PORT_BASE + 41)) \
        setsid "$VC_BUILD_DIR/sink/vc-sink" </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    ;;
stop)
    [[ -f $PIDFILE ]] || exit 0
    pid=$(cat "$PIDFILE")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    ;;
*)
    echo "usage: refsink.sh prepare|start|stop" >&2
    exit 2
    ;;
esac
