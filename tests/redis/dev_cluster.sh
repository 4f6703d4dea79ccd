#!/bin/sh
# Development only: a Redis Cluster of 3 masters + 3 replicas on 127.0.0.1,
# ports BASE..BASE+5, data under DIR, configured like the local stack's
# (cluster-node-timeout 2000). The tests themselves only read VC_REDIS_NODES.
#   dev_cluster.sh start|stop|env BASE DIR
set -eu
cmd=${1:?start|stop|env}; base=${2:?port base}; dir=${3:?data dir}
ports=$(seq "$base" $((base + 5)))
case $cmd in
start)
    mkdir -p "$dir"
    for p in $ports; do
        mkdir -p "$dir/$p"
        redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-config-file "$dir/$p/nodes.conf" --cluster-node-timeout 2000 \
            --appendonly no --save "" --dir "$dir/$p" --daemonize yes \
            --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log"
    done
    for p in $ports; do
        i=0
        until redis-cli -p "$p" ping >/dev/null 2>&1; do
            i=$((i + 1)); [ $i -lt 50 ] || { echo "redis $p did not start" >&2; exit 1; }
            sleep 0.1
        done
    done
    if ! redis-cli -p "$base" cluster info | grep -q 'cluster_state:ok'; then
        redis-cli --cluster create $(for p in $ports; do printf '127.0.0.1:%s ' "$p"; done) \
            --cluster-replicas 1 --cluster-yes >/dev/null
    fi
    i=0
    until redis-cli --cluster check "127.0.0.1:$base" >/dev/null 2>&1 &&
          redis-cli -p "$base" cluster info | grep -q 'cluster_state:ok'; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "cluster not ok" >&2; exit 1; }
        sleep 0.2
    done
    ;;
stop)
    for p in $ports; do
        [ -f "$dir/$p/redis.pid" ] && kill "$(cat "$dir/$p/redis.pid")" 2>/dev/null || true
    done
    ;;
env)
    printf 'VC_REDIS_NODES=%s\n' "$(for p in $ports; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')"
    ;;
esac
