#!/usr/bin/python3
"""Gateway benchmarks: idle-viewer memory, accept rate, fan-out, and the same
memory and accept rate for Node.js + ws on the same machine in the same run.

usage: bench_gateway.py BUILD_DIR [--viewers 19500] [--loaders 2] [--gateways 1] [--pin] [--node-modules DIR]
Needs the local stack's environment (deploy/local/stack env) and a build
without sanitizers. Prints one JSON object per measurement and a summary."""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_http(port, path="/healthz", timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"server on {port} did not come up")


def murmur2(data):
    m, r = 0x5bd1e995, 24
    length = len(data)
    h = (0x9747b28c ^ length) & 0xffffffff
    i = 0
    while length - i >= 4:
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff
        h ^= k
        i += 4
    rest = length - i
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def pinned_to(cpu):
    """Command prefix that runs a process (all its threads) on one CPU; cpu None: no prefix."""
    return [] if cpu is None else ["taskset", "-c", str(cpu % os.cpu_count())]


def loader_cpu(i, gateways, pinned):
    """With --pin, loader i shares the CPU of its gateway (i mod gateways) when
    the gateways fill every CPU, else it takes the CPUs the gateways leave."""
    if not pinned:
        return None
    ncpu = os.cpu_count()
    if gateways >= ncpu:
        return (i % gateways) % ncpu
    return gateways + i % (ncpu - gateways)


def load(build, ports, n, loaders, stream, token, hold, marker="", pinned=False):
    """Run the loaders (loader i to ports[i % len(ports)]); returns their processes once all are
    connected, and the CPU ticks (user + system) they had used by then."""
    procs, ready = [], []
    per = n // loaders
    for i in range(loaders):
        port = ports[i % len(ports)]
        rf = tempfile.mktemp(prefix="gwload-ready-")
        ready.append(rf)
        args = [os.path.join(build, "tests/bench/gateway/gw_load"), "--port", str(port), "--n", str(per),
                "--src", str(2 + i), "--stream", str(stream), "--token", token, "--hold", str(hold),
                "--inflight", "256"]
        if marker:
            args += ["--marker", marker]
        procs.append(subprocess.Popen(pinned_to(loader_cpu(i, len(ports), pinned)) + args, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, GW_LOAD_READY=rf)))
    deadline = time.monotonic() + 180
    while not all(os.path.exists(r) for r in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    ticks = 0
    for p in procs:
        try:
            ticks += cpu_ticks(p.pid)
        except OSError:
            pass
    for r in ready:
        if os.path.exists(r):
            os.unlink(r)
    return procs, ticks


def results(procs, timeout=120):
    out = []
    for p in procs:
        line, _ = p.communicate(timeout=timeout)
        out.append(json.loads(line.strip().splitlines()[-1]))
    return out


def measure(name, build, pids, ports, n, loaders, token, fanout_cb=None, pinned=False):
    time.sleep(2)
    rss0 = sum(rss_kb(p) for p in pids)
    marker = ""
    if fanout_cb:
        value = random.randint(100000, 999999)
        marker = f'"viewers":{value},'
    cpu0 = sum(cpu_ticks(p) for p in pids)
    load0 = os.getloadavg()[0]
    procs, loader_ticks = load(build, ports, n, loaders, 424242, token, hold=60 if fanout_cb else 4, marker=marker,
                               pinned=pinned)
    cpu1 = sum(cpu_ticks(p) for p in pids)
    time.sleep(3)
    rss1 = sum(rss_kb(p) for p in pids)
    t_write = None
    if fanout_cb:
        t_write = fanout_cb(value)
    res = results(procs)
    gw_fanout = None
    if fanout_cb:
        # the gateway's own measure: from the count read to its last write, slowest process
        for port in ports:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            for line in body.splitlines():
                if line.startswith("vc_gateway_fanout_last_seconds "):
                    gw_fanout = max(gw_fanout or 0, round(float(line.split()[1]) * 1000))
    opened = sum(r["open"] for r in res)
    connect_ms = max(r["connect_ms"] for r in res)
    row = {"server": name, "processes": len(pids), "viewers": opened, "failed": sum(r["failed"] for r in res),
           "rss_before_kb": rss0, "rss_after_kb": rss1,
           "bytes_per_viewer": round((rss1 - rss0) * 1024 / max(opened, 1)),
           "accept_per_s": round(opened * 1000 / max(connect_ms, 1)),
           # server CPU (user + system, all its threads) per accepted viewer
           "server_cpu_us_per_viewer": round((cpu1 - cpu0) * 1e6 / os.sysconf("SC_CLK_TCK") / max(opened, 1)),
           # the load generators' CPU over the same phase (they share the machine)
           "loader_cpu_us_per_viewer": round(loader_ticks * 1e6 / os.sysconf("SC_CLK_TCK") / max(opened, 1)),
           "loadavg_1m": round(load0, 2), "pinned": pinned}
    if fanout_cb:
        marked = sum(r["marked"] for r in res)
        first = min(r["first_mark_ms"] for r in res if r["marked"])
        last = max(r["last_mark_ms"] for r in res if r["marked"])
        row.update({"fanout_reached": marked, "fanout_spread_ms": last - first, "gateway_fanout_ms": gw_fanout,
                    "write_to_last_ms": last - t_write})
    print(json.dumps(row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--viewers", type=int, default=19500)
    ap.add_argument("--loaders", type=int, default=2)
    ap.add_argument("--gateways", type=int, default=1, help="gateway processes, on ports PORT, PORT+1, ...")
    ap.add_argument("--node-modules", default=None)
    ap.add_argument("--pin", action="store_true",
                    help="pin gateway i to CPU i and each loader to its gateway's CPU (or to the CPUs the gateways leave)")
    base = int(os.environ.get("VC_PORT_BASE", "17000"))
    # Fixed ports outside the ephemeral range: the load leaves thousands of
    # TIME_WAIT sockets on ephemeral ports, which a "free" port may collide with.
    ap.add_argument("--port", type=int, default=base + 28, help="vc-gateway port (default B+28)")
    ap.add_argument("--node-port", type=int, default=base + 29, help="Node.js port (default B+29)")
    a = ap.parse_args()
    for name in ("VC_KAFKA_BROKERS", "VC_REDIS_NODES", "VC_TOKEN_SECRET"):
        if not os.environ.get(name):
            sys.exit(f"{name} is not set: source the stack's environment first")
    gw_bin = os.path.join(a.build, "gateway/vc-gateway")
    token = subprocess.run([gw_bin, "token", "--user", "1", "--ttl", "3600"], capture_output=True, text=True,
                           check=True).stdout.strip()
    nparts = int(os.environ.get("VC_EVENTS_PARTITIONS", "12"))
    redis_port = os.environ["VC_REDIS_NODES"].split(",")[0].split(":")[1]

    # vc-gateway: one or more processes, each on its own port (B+28, B+27, ...)
    gws, ports = [], []
    for i in range(a.gateways):
        port = a.port - i
        env = dict(os.environ, VC_GATEWAY_PORT=str(port), VC_GATEWAY_ID=f"gwbench-{os.getpid()}-{i}",
                   VC_MAX_CONNS_PER_IP="100000", VC_HANDSHAKES_PER_IP_PER_SEC="1000000",
                   VC_MAX_CONNECTIONS=str(a.viewers + 100), VC_GATEWAY_LOG_LEVEL="1",
                   # No catalog thread (the web page's titles): its ~2 MB at start-up
                   # would sit in the "before" RSS and make the per-viewer delta look smaller.
                   VC_GATEWAY_CATALOG_SECONDS="0")
        gws.append(subprocess.Popen(pinned_to(i if a.pin else None) + [gw_bin], env=env, stderr=subprocess.DEVNULL))
        ports.append(port)
    for port in ports:
        wait_http(port)

    def fanout(value):
        stream = 424242
        part = (murmur2(str(stream).encode()) & 0x7fffffff) % nparts
        key = f"vc:{{vc.{part}}}:s:{stream}"
        t = int(time.time() * 1000)
        subprocess.run(["redis-cli", "-c", "-p", redis_port, "HSET", key, "viewers", str(value), "peak", str(value),
                        "status", "live"], check=True, capture_output=True)
        return t

    rows = [measure("vc-gateway", a.build, [g.pid for g in gws], ports, a.viewers, a.loaders, token, fanout,
                    pinned=a.pin)]
    t0 = time.monotonic()
    for g in gws:
        g.send_signal(signal.SIGTERM)
    for g in gws:
        g.wait(timeout=30)
    print(json.dumps({"server": "vc-gateway", "sigterm_exit_s": round(time.monotonic() - t0, 2),
                      "exit_codes": [g.returncode for g in gws]}), flush=True)

    # Node.js + ws
    if a.node_modules:
        port = a.node_port
        node = subprocess.Popen(pinned_to(0 if a.pin else None) + ["node", os.path.join(HERE, "ws_server.js")],
                                env=dict(os.environ, PORT=str(port), NODE_PATH=a.node_modules),
                                stderr=subprocess.DEVNULL)
        wait_http(port, "/")
        rows.append(measure("node-ws", a.build, [node.pid], [port], a.viewers, a.loaders, token, pinned=a.pin))
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=10)
        g, n = rows[0], rows[1]
        print(json.dumps({"memory_ratio_gateway_over_node": round(g["bytes_per_viewer"] / max(n["bytes_per_viewer"], 1), 3),
                          "accept_ratio_gateway_over_node": round(g["accept_per_s"] / max(n["accept_per_s"], 1), 2)}))


if __name__ == "__main__":
    main()
