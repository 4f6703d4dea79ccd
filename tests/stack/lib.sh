# Shared by the tests of tests/stack: TAP-like checks and private stacks.
# Sourced by test_*.sh; expects BUILD (the cmake build dir) to be set.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=$REPO/deploy/local/stack
FAILURES=0
CHECKS=0

# The caller's stack coordinates must not leak into the private stacks.
for v in $(compgen -e | grep '^VC_'); do unset "$v"; done

ok() { CHECKS=$((CHECKS + 1)); echo "ok $CHECKS - $1"; }
not_ok() {
    CHECKS=$((CHECKS + 1))
    FAILURES=$((FAILURES + 1))
    echo "not ok $CHECKS - $1"
    if [[ -n ${2:-} ]]; then printf '%s\n' "$2" | sed 's/^/#   /'; fi
}

# check DESCRIPTION CMD...: CMD must succeed; its output is shown on failure.
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "$out"; fi
}

# check_fails DESCRIPTION CMD...: CMD must fail.
check_fails() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then not_ok "$desc" "unexpectedly succeeded: $out"; else ok "$desc"; fi
}

# eventually TIMEOUT_S CMD...: polls CMD (bounded) until it succeeds.
eventually() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# A private stack: stack_in NAME PORT_BASE [stack args...]. Extra settings
# can be passed as environment (VC_EVENTS_PARTITIONS=4 stack_in ...).
stack_in() {
    local name=$1 base=$2
    shift 2
    VC_STACK_DIR=$WORK/$name VC_PORT_BASE=$base VC_BUILD_DIR=$BUILD "$STACK" "$@"
}

# Pids of live (not zombie) processes whose command line mentions DIR.
live_pids_under() {
    local dir=$1 pid
    for pid in $(pgrep -f -- "$dir/" || true); do
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        [[ $(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) =~ ^[^Z]$ ]] && echo "$pid"
    done
    return 0
}

pid_alive() { [[ -d /proc/$1 && $(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) != Z ]]; }

finish() {
    echo "1..$CHECKS"
    if ((FAILURES)); then
        echo "# $FAILURES of $CHECKS checks failed"
        exit 1
    fi
    echo "# all $CHECKS checks passed"
    # The stacks are down; their datadirs (~230 MB each) are kept only on failure.
    if [[ -n ${WORK:-} && -z $(live_pids_under "$WORK") ]]; then
        trap - EXIT
        rm -rf "$WORK"
    fi
    exit 0
}

require_build() {
    [[ -x $BUILD/deploy/local/vc-broker ]] || {
        echo "not ok - $BUILD/deploy/local/vc-broker is not built (cmake --build $BUILD)"
        exit 1
    }
    local tool
    for tool in redis-server redis-cli mariadbd mariadb kcat pgrep; do
        command -v "$tool" >/dev/null || { echo "not ok - $tool is not installed (deploy/local/stack deps)"; exit 1; }
    done
}
