#!/usr/bin/env python3
"""tests/e2e/check.py: the end-of-case checks of tests/e2e/e2e.sh (standard library only).

  check.py redis OUT.json
      Nothing left over in Redis after every viewer left (VC_REDIS_NODES, every
      master): every stream hash `vc:{vc.P}:s:<id>` says viewers 0, every rank
      zset (`vc:{vc.P}:rank`, `vc:{vc.P}:rank:c:<cat>`) is absent or empty (a
      member with score 0 is called out as a zero entry), and no per-viewer key
      (any `vc:{vc.P}:u:...` or `vc:{vc.P}:g:...`, whatever its type: the
      aggregator's internal layout may change) holds an entry. Gateway-epoch
      indexes (`:gs:`) and unknown keys are listed, not failed.

  check.py offsets DB GROUP [TARGET]
      Exit 0 when the sink group GROUP has stored, in database DB, a next offset
      at the end of every partition of VC_EVENTS_TOPIC (high watermarks from kcat;
      or at least the offsets of TARGET, a JSON list as `watermarks` prints);
      prints "lag N" (messages not yet stored) either way.

  check.py watermarks
      Prints the events topic's high watermarks as JSON (one list).

  check.py db-compare DB REF OUT.json
      Compares, row by row, every table the sink writes (the tables on which
      sql/roles.sql gives the role vc_sink_writer INSERT) and every view of DB
      with the same in REF. Prints each difference (missing row, extra row, or
      column: value vs reference value) and exits 1 on any.

  check.py result ...     (see result() below) one case's result JSON.

Database access goes through `deploy/local/stack mysql admin` (the stack's
environment must be exported, as e2e.sh does).
"""
import json
import os
import re
import socket
import subprocess
import sys

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STACK = os.path.join(REPO, "deploy", "local", "stack")


# ---------------------------------------------------------------- Redis (a minimal RESP client)

class Redis:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, int(port)), timeout=5)
        self.f = self.s.makefile("rb")

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError(f"bad RESP reply {line!r}")

    def close(self):
        self.s.close()


KEY_RE = re.compile(r"^vc:\{vc\.(\d+)\}:(.*)$")
SIZE_CMD = {"hash": "HLEN", "set": "SCARD", "zset": "ZCARD", "list": "LLEN", "string": "STRLEN", "stream": "XLEN"}


def redis_check(out_path):
    nodes = [n for n in os.environ.get("VC_REDIS_NODES", "").split(",") if n]
    if not nodes:
        sys.exit("check.py redis: VC_REDIS_NODES is not set (run with the stack environment)")
    problems, info = [], []
    counts = {"masters": 0, "keys": 0, "streams": 0, "streams_nonzero": 0, "rank_keys": 0,
              "rank_entries": 0, "rank_zero_entries": 0, "per_viewer_keys": 0, "gs_keys": 0, "gs_entries": 0, "other_keys": 0}
    for node in nodes:
        host, port = node.rsplit(":", 1)
        try:
            r = Redis(host, port)
            role = r("ROLE")
        except (OSError, ConnectionError, RuntimeError) as e:
            info.append(f"{node}: not reachable ({e}); skipped")
            continue
        if role[0] != "master":
            r.close()
            continue
        counts["masters"] += 1
        cursor = "0"
        keys = []
        while True:
            cursor, batch = r("SCAN", cursor, "MATCH", "vc:*", "COUNT", 1000)
            keys += batch
            if cursor == "0":
                break
        for key in sorted(set(keys)):
            counts["keys"] += 1
            m = KEY_RE.match(key)
            rest = m.group(2) if m else key
            kind = r("TYPE", key)
            if kind == "none":  # expired or deleted since the SCAN
                continue
            size = r(SIZE_CMD[kind], key) if kind in SIZE_CMD else -1
            if m and rest == "meta":
                continue
            if m and re.fullmatch(r"s:\d+", rest) and kind == "hash":
                counts["streams"] += 1
                v = r("HGET", key, "viewers")
                if v not in (None, "0"):
                    counts["streams_nonzero"] += 1
                    problems.append(f"{node} {key}: viewers {v}, truth 0 ({r('HGETALL', key)})")
            elif m and re.fullmatch(r"rank(:c:\d+)?", rest):
                counts["rank_keys"] += 1
                if kind != "zset":
                    problems.append(f"{node} {key}: type {kind}, expected zset")
                    continue
                members = r("ZRANGE", key, 0, -1, "WITHSCORES")
                pairs = list(zip(members[0::2], members[1::2]))
                counts["rank_entries"] += len(pairs)
                zero = [p for p, s in pairs if float(s) == 0]
                counts["rank_zero_entries"] += len(zero)
                if pairs:
                    problems.append(f"{node} {key}: {len(pairs)} members after everyone left "
                                    f"({len(zero)} with score 0): {pairs[:10]}")
            elif m and re.match(r"(u|g):", rest):
                counts["per_viewer_keys"] += 1
                if size != 0:
                    problems.append(f"{node} {key}: per-viewer key ({kind}) holds {size} entries")
            elif m and rest.startswith("gs:"):
                counts["gs_keys"] += 1
                counts["gs_entries"] += max(size, 0)
            else:
                counts["other_keys"] += 1
                info.append(f"{node} {key}: {kind} of size {size} (not a contract or per-viewer key)")
        r.close()
    # The stack's cluster: VC_REDIS_MASTERS when the stack says it, else 3 (3 masters + 3 replicas).
    want = len([n for n in os.environ.get("VC_REDIS_MASTERS", "").split(",") if n]) or 3
    if counts["masters"] != want:
        problems.append(f"{counts['masters']} reachable masters, expected {want}")
    res = {"ok": not problems, "problems": problems, "info": info, "counts": counts}
    json.dump(res, open(out_path, "w"), indent=1)
    print(f"redis: {counts['masters']} masters, {counts['keys']} vc keys: {counts['streams']} stream hashes "
          f"({counts['streams_nonzero']} not 0), {counts['rank_keys']} rank zsets ({counts['rank_entries']} members, "
          f"{counts['rank_zero_entries']} with score 0), {counts['per_viewer_keys']} per-viewer keys, "
          f"{counts['gs_keys']} gateway-epoch indexes ({counts['gs_entries']} entries; not checked), "
          f"{counts['other_keys']} other")
    for p in problems[:30]:
        print("  LEFTOVER " + p)
    if len(problems) > 30:
        print(f"  ... and {len(problems) - 30} more")
    for i in info[:5]:
        print("  note: " + i)
    if len(info) > 5:
        print(f"  note: ... and {len(info) - 5} more notes (see {out_path})")
    return 0 if not problems else 1


# ---------------------------------------------------------------- MariaDB

def mysql_cmd():
    """The administrator's client on the writer: what `stack mysql admin` runs
    (the instance's option file, unix socket), without the script's start-up."""
    cnf = os.path.join(os.environ.get("VC_STACK_DIR", ""), "mariadb", "writer", "my.cnf")
    if os.path.exists(cnf):
        return ["mariadb", f"--defaults-file={cnf}"]
    return [STACK, "mysql", "admin"]


def sql(query):
    """Rows of a query (or several: their rows one after the other) as lists of
    strings (NULL as None), as the administrator."""
    p = subprocess.run(mysql_cmd() + ["-N", "-B", "--raw", "-e", query],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"mysql failed ({p.returncode}): {p.stderr.strip()}\nquery: {query[:500]}")
    rows = []
    for line in p.stdout.split("\n"):
        if line == "":
            continue
        rows.append([None if c == "NULL" else c for c in line.split("\t")])
    return rows


def q(name):
    return "`" + name.replace("`", "``") + "`"


def watermarks():
    brokers, topic = os.environ["VC_KAFKA_BROKERS"], os.environ.get("VC_EVENTS_TOPIC", "vc.events")
    meta = json.loads(subprocess.run(["kcat", "-L", "-J", "-b", brokers, "-t", topic], capture_output=True,
                                     text=True, timeout=20, check=True).stdout)
    parts = sorted(p["partition"] for t in meta["topics"] if t["topic"] == topic for p in t["partitions"])
    args = ["kcat", "-Q", "-b", brokers]
    for p in parts:
        args += ["-t", f"{topic}:{p}:-1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True).stdout
    wm = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+) \[(\d+)\] offset (-?\d+)$", line.strip())
        if m:
            wm[int(m.group(2))] = int(m.group(3))
    if sorted(wm) != parts or not parts:
        raise RuntimeError(f"kcat -Q answered {out!r} for partitions {parts}")
    return [wm[p] for p in parts]


def offsets(db, group, target=None):
    topic = os.environ.get("VC_EVENTS_TOPIC", "vc.events")
    try:
        wm = json.loads(target) if target else watermarks()
        stored = {int(p): int(o) for p, o in sql(
            f"SELECT kpartition, next_offset FROM {q(db)}.sink_offsets WHERE consumer_group = '{group}' "
            f"AND topic = '{topic}'")}
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        print("not yet: " + str(e).splitlines()[0])
        return 1
    lag = sum(max(0, w - stored.get(p, 0)) for p, w in enumerate(wm))
    print(f"lag {lag}")
    return 0 if lag == 0 else 1


def db_compare(db, ref, out_path):
    # The tables vc-sink writes: those sql/roles.sql lets its role insert into.
    tables = [t for (t,) in sql(f"SELECT Table_name FROM mysql.tables_priv WHERE User = 'vc_sink_writer' "
                                f"AND Host = '' AND Db = '{db}' AND FIND_IN_SET('Insert', Table_priv) "
                                f"ORDER BY Table_name")]
    views = [t for (t,) in sql(f"SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}' "
                               f"ORDER BY TABLE_NAME")]
    # Columns that legitimately differ between the two sinks:
    #  - sink_offsets.consumer_group, sink_checkpoints.consumer_group: each sink
    #    stores under its own consumer group, by construction (the rows are
    #    matched on topic and partition instead).
    #  - sink_offsets.flushes: the number of flush transactions, which depends
    #    on wall-clock flush timing, restarts and retries, not on the events.
    #  - sink_checkpoints.state: the serialized open state of a partition. Its
    #    bytes follow the iteration order of the sink's hash maps, which
    #    depends on their insert/delete history (a sink restored from a
    #    checkpoint holds the same entries in another order); the logical
    #    content is what the rows written from it show.
    # Everything else is a function of the events (event time only, no wall
    # clock, no auto-increment ids in these tables) and must be equal.
    exclude = {("sink_offsets", "consumer_group"), ("sink_offsets", "flushes"),
               ("sink_checkpoints", "consumer_group"), ("sink_checkpoints", "state")}
    if not tables:
        raise RuntimeError(f"no table of {db} is writable by vc_sink_writer (sql/roles.sql not applied?)")
    diffs, summary = [], {}
    names = ", ".join(f"'{t}'" for t in tables + views)
    allcols = {}
    for d, t, c in sql(f"SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
                       f"WHERE TABLE_SCHEMA IN ('{db}', '{ref}') AND TABLE_NAME IN ({names}) "
                       f"ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"):
        allcols.setdefault((d, t), []).append(c)
    pks = {}
    for t, c in sql(f"SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
                    f"'{db}' AND TABLE_NAME IN ({names}) AND CONSTRAINT_NAME = 'PRIMARY' "
                    f"ORDER BY TABLE_NAME, ORDINAL_POSITION"):
        pks.setdefault(t, []).append(c)
    plan = []
    for t in tables + views:
        cols, ref_cols = allcols.get((db, t), []), allcols.get((ref, t), [])
        if cols != ref_cols or not cols:
            diffs.append(f"{t}: columns differ: {cols} vs {ref_cols}")
            continue
        pk = pks.get(t, [])
        cols = [c for c in cols if (t, c) not in exclude]
        key = [c for c in pk if (t, c) not in exclude] or cols  # a view: the whole row is the key
        select = ", ".join(q(c) for c in cols)
        plan.append((t, cols, key, select))
    # All the rows in one client run: a marker row before each result.
    script = "".join(f"SELECT '@@{i}:{side}'; SELECT {select} FROM {q(d)}.{q(t)};\n"
                     for i, (t, cols, key, select) in enumerate(plan) for side, d in (("db", db), ("ref", ref)))
    results, cur = {}, None
    for r in sql(script):
        if len(r) == 1 and r[0] is not None and r[0].startswith("@@"):
            cur = r[0][2:]
            results[cur] = []
        else:
            results[cur].append(r)
    for i, (t, cols, key, select) in enumerate(plan):
        rows = {}
        for side in ("db", "ref"):
            m = {}
            for r in results.get(f"{i}:{side}", []):
                k = tuple(r[cols.index(c)] for c in key)
                if k in m:
                    diffs.append(f"{t} ({side}): key {dict(zip(key, k))} appears twice")
                m[k] = r
            rows[side] = m
        a, b = rows["db"], rows["ref"]
        nd = 0
        for k in sorted(set(a) | set(b), key=lambda k: [(x is None, x) for x in k]):
            kd = ", ".join(f"{c}={v}" for c, v in zip(key, k))
            if k not in b:
                diffs.append(f"{t} [{kd}]: row only in {db} (the faulted run): {dict(zip(cols, a[k]))}")
                nd += 1
            elif k not in a:
                diffs.append(f"{t} [{kd}]: row only in {ref} (the reference run): {dict(zip(cols, b[k]))}")
                nd += 1
            elif a[k] != b[k]:
                cd = [f"{c}: {x} vs reference {y}" for c, x, y in zip(cols, a[k], b[k]) if x != y]
                diffs.append(f"{t} [{kd}]: " + "; ".join(cd))
                nd += 1
        summary[t] = {"rows": len(a), "ref_rows": len(b), "differences": nd}
    res = {"equal": not diffs, "tables": summary, "differences": diffs,
           "excluded_columns": sorted(f"{t}.{c}" for t, c in exclude)}
    json.dump(res, open(out_path, "w"), indent=1)
    print("database vs reference: " + ", ".join(f"{t} {s['rows']}/{s['ref_rows']} rows"
                                                 + (f" ({s['differences']} differ)" if s["differences"] else "")
                                                 for t, s in summary.items()))
    for d in diffs[:40]:
        print("  DIFF " + d)
    if len(diffs) > 40:
        print(f"  ... and {len(diffs) - 40} more (see {out_path})")
    return 0 if not diffs else 1


# ---------------------------------------------------------------- one case's result

def result(argv):
    """result OUT.json CASE FAULT REPORT REC_KIND REC_FROM REC_CP DB_REC_FILE REDIS.json DBCMP.json PASSED WALL

    REC_KIND: counts  -- recovery = (checkpoint REC_CP's load time - REC_FROM) + the
                         checkpoint's wait until every count equalled the truth
              db      -- recovery = seconds in DB_REC_FILE (written by fault.sh)
              none    -- no fault
    """
    (out, case, fault, report, kind, rec_from, rec_cp, db_rec_file, redis_json, dbcmp_json, passed,
     wall) = argv
    res = {"case": case, "fault": fault, "passed": passed == "1", "wall_seconds": int(wall),
           "recovery_seconds": None, "recovery_kind": kind, "counts_exact": None, "db_equal": None,
           "leftovers": None}
    try:
        r = json.load(open(report))
        res["counts_exact"] = bool(r["checkpoints"]) and all(c["converged"] for c in r["checkpoints"])
        res["checkpoints"] = [{"label": c["label"], "at": round(c["at"], 2), "seconds": round(c["seconds"], 2),
                               "converged": c["converged"]} for c in r["checkpoints"]]
        res["commands"] = r["commands"]
        res["viewers"] = r["config"]["viewers"]
        res["connections"] = r["totals"]["connections_established"]
        if kind == "counts":
            cp = next(c for c in r["checkpoints"] if c["label"] == rec_cp)
            if cp["converged"]:
                res["recovery_seconds"] = round(cp["at"] - float(rec_from) + cp["seconds"], 1)
    except (OSError, ValueError, KeyError, StopIteration) as e:
        res["error"] = f"report: {e}"
    if kind == "db":
        try:
            res["recovery_seconds"] = round(float(open(db_rec_file).read().strip()), 1)
        except (OSError, ValueError):
            pass
    try:
        red = json.load(open(redis_json))
        res["leftovers"] = len(red["problems"])
        res["leftovers_sample"] = red["problems"][:5]
    except (OSError, ValueError, KeyError):
        pass
    try:
        dbc = json.load(open(dbcmp_json))
        res["db_equal"] = dbc["equal"]
        res["db_tables"] = dbc["tables"]
        res["db_differences"] = dbc["differences"][:20]
    except (OSError, ValueError, KeyError):
        pass
    json.dump(res, open(out, "w"), indent=1)
    return 0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "redis" and len(args) == 1:
        return redis_check(args[0])
    if cmd == "offsets" and len(args) in (2, 3):
        return offsets(*args)
    if cmd == "watermarks" and not args:
        print(json.dumps(watermarks()))
        return 0
    if cmd == "db-compare" and len(args) == 3:
        return db_compare(*args)
    if cmd == "result" and len(args) == 12:
        return result(args)
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
