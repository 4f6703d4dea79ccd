#!/usr/bin/python3
"""vc-gateway against an independent client: Debian's python3-websockets.

Starts its own vc-gateway (argv[1]) on a free port with the local stack's
environment (VC_KAFKA_BROKERS, VC_REDIS_NODES, VC_TOKEN_SECRET, ...), then
checks the protocol as a browser-like client sees it. Every wait is bounded."""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import websockets

GATEWAY = sys.argv[1]
TIMEOUT = 10


def need(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"FAIL: {name} is not set: run with the local stack's environment (deploy/local/stack env)")
    return value


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(user, ttl, secret=None):
    args = [GATEWAY, "token", "--user", str(user), "--ttl", str(ttl)]
    if secret:
        args += ["--token-secret", secret]
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=TIMEOUT).stdout.strip()


def metric(port, series):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT).read().decode()
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


async def closed_with(url, send=None):
    """Connect, optionally send, return (code, reason) of the close."""
    try:
        async with websockets.connect(url, max_size=None, open_timeout=TIMEOUT) as ws:
            if send is not None:
                await ws.send(send)
            while True:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
    except websockets.ConnectionClosed as e:
        return e.code, e.reason


async def recv_json_type(ws, kind):
    import json
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        msg = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if msg.get("type") == kind:
            return msg
    raise AssertionError(f"no {kind} message")


async def checks(port, proc):
    base = f"ws://127.0.0.1:{port}/ws"
    stream = 3000000 + os.getpid() % 100000
    good = token(11, 300)

    # Accepted: a count right after join, and the application ping.
    async with websockets.connect(f"{base}?stream={stream}&token={good}", open_timeout=TIMEOUT) as ws:
        count = await recv_json_type(ws, "count")
        assert count["stream"] == stream and count["status"] in ("live", "counting", "stale", "syncing"), count
        await ws.send('{"type":"ping"}')
        assert (await recv_json_type(ws, "pong")) == {"type": "pong"}
    print("ok: token accepted, count pushed, ping answered")

    code, reason = await closed_with(f"{base}?stream={stream}&token={token(11, -5)}")
    assert code == 4401 and "expired" in reason, (code, reason)
    code, reason = await closed_with(f"{base}?stream={stream}&token={token(11, 300, secret='forged-secret')}")
    assert code == 4401, (code, reason)
    code, reason = await closed_with(f"{base}?stream={stream}")
    assert code == 4401 and "token" in reason, (code, reason)
    print("ok: expired, forged and missing tokens close with 4401")

    # websockets 10 refuses lws's HTTP/1.0 error status line, so ask with a plain socket.
    for bad in ("abc", "0", "-1"):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(f"GET /ws?stream={bad}&token={good} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            status = s.recv(64).decode(errors="replace")
            assert status.split()[1] == "400", (bad, status)
    print("ok: malformed stream id refused before the upgrade")

    url = f"{base}?stream={stream}&token={good}"
    assert (await closed_with(url, "x" * 5000))[0] == 1009
    assert (await closed_with(url, b"\x00\x01"))[0] == 1003
    assert (await closed_with(url, '{"type":"subscribe"}'))[0] == 1008
    assert (await closed_with(url, "not json"))[0] == 1003
    print("ok: oversized, binary, unknown-type and non-JSON messages get 1009, 1003, 1008, 1003")

    # Two tabs of one user: both served; closing one leaves the other working.
    a = await websockets.connect(url, open_timeout=TIMEOUT)
    b = await websockets.connect(url, open_timeout=TIMEOUT)
    await recv_json_type(a, "count")
    await recv_json_type(b, "count")
    await a.close()
    await b.send('{"type":"ping"}')
    await recv_json_type(b, "pong")
    print("ok: two tabs, one closed, the other still served")

    joins = metric(port, "vc_gateway_joins_total")
    assert joins is not None and joins >= 3, joins

    # SIGTERM: the open tab is closed with 1001 and the process exits in time.
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        while True:
            await asyncio.wait_for(b.recv(), TIMEOUT)
    except websockets.ConnectionClosed as e:
        assert e.code == 1001, e.code
    rc = proc.wait(timeout=10)
    assert rc == 0, rc
    assert time.monotonic() - t0 < 10
    print("ok: SIGTERM closes viewers with 1001 and exits 0 within 10 s")


def main():
    for name in ("VC_KAFKA_BROKERS", "VC_REDIS_NODES", "VC_TOKEN_SECRET"):
        need(name)
    port = free_port()
    env = dict(os.environ, VC_GATEWAY_PORT=str(port), VC_GATEWAY_ID=f"gwpy-{os.getpid()}")
    proc = subprocess.Popen([GATEWAY], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"FAIL: vc-gateway did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
        asyncio.run(checks(port, proc))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
