#!/bin/sh
# Pipelined SET/INCR through vc_redis, then redis-benchmark with the same
# pipeline depth against the same cluster. VC_REDIS_NODES names the cluster;
# BUILD is the build folder (default build).
#   tests/bench/redis/run.sh [requests] [batch]
set -eu
n=${1:-200000}; batch=${2:-1000}
build=${BUILD:-build}
: "${VC_REDIS_NODES:?VC_REDIS_NODES is not set}"
first=${VC_REDIS_NODES%%,*}
"$build/tests/bench/redis/bench_redis" --requests "$n" --batch "$batch"
echo "redis-benchmark --cluster -c 1 -P $batch (one connection per node, like vc_redis):"
redis-benchmark --cluster -h "${first%:*}" -p "${first##*:}" -c 1 -n "$n" -P "$batch" -t set,incr,get -q
# redis-benchmark leaves its few key:{tag}:__rand_int__ / counter keys behind.
