#!/usr/bin/python3
"""Interop of the C event codec with a second, independent Avro implementation
(Debian's python3-avro): C-encoded single-object messages read by Python and
Python-encoded ones read by C, fingerprints, and schema evolution both ways.

usage: test_interop.py VC_EVENT_TOOL SCHEMA.avsc SCHEMA_V2.avsc SCHEMA_OLDER.avsc

Run with /usr/bin/python3: the python3-avro package lives in Debian's python."""
import datetime
import io
import json
import random
import struct
import subprocess
import sys

import avro.io
import avro.schema

TOOL, SCHEMA_PATH, V2_PATH, OLDER_PATH = sys.argv[1:5]
UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


# --- CRC-64-AVRO and Parsing Canonical Form, written here from the specification ---

CRC64_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (CRC64_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    fp = CRC64_EMPTY
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp


PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def pcf(s, ns=""):
    """The spec's transformations: [PRIMITIVES] [FULLNAMES] [STRIP] [ORDER] [STRINGS] [INTEGERS] [WHITESPACE]."""
    def fullname(name, space):
        return name if "." in name or not space else space + "." + name

    if isinstance(s, str):
        return json.dumps(s if s in PRIMITIVES else fullname(s, ns))
    if isinstance(s, list):
        return "[" + ",".join(pcf(b, ns) for b in s) + "]"
    t = s["type"]
    if t in ("record", "enum", "fixed"):
        space = s.get("namespace", ns) or ""
        name = fullname(s["name"], space)
        inner = name.rsplit(".", 1)[0] if "." in name else ""
        out = '{"name":%s,"type":"%s"' % (json.dumps(name), t)
        if t == "record":
            out += ',"fields":[' + ",".join(
                '{"name":%s,"type":%s}' % (json.dumps(f["name"]), pcf(f["type"], inner)) for f in s["fields"]) + "]"
        elif t == "enum":
            out += ',"symbols":[' + ",".join(json.dumps(x) for x in s["symbols"]) + "]"
        else:
            out += ',"size":%d' % s["size"]
        return out + "}"
    if t == "array":
        return '{"type":"array","items":%s}' % pcf(s["items"], ns)
    if t == "map":
        return '{"type":"map","values":%s}' % pcf(s["values"], ns)
    return pcf(t, ns)


def collapse_primitives(j):
    """python3-avro 1.11.1 keeps {"type":"long"} for a primitive that had a
    logicalType; the spec's [PRIMITIVES] rule (and Java) make it "long"."""
    if isinstance(j, dict):
        if set(j) == {"type"} and j["type"] in PRIMITIVES:
            return j["type"]
        return {k: collapse_primitives(v) for k, v in j.items()}
    if isinstance(j, list):
        return [collapse_primitives(v) for v in j]
    return j


def tool(*args, stdin=b""):
    p = subprocess.run([TOOL, *args], input=stdin, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


# The specification's own vectors pin the Python CRC down first.
check(crc64_avro(b'"int"') == 8247732601305521295, "crc64 of \"int\"")
check(crc64_avro(b'"null"') == 7195948357588979594, "crc64 of \"null\"")

schema_text = open(SCHEMA_PATH).read()
v2_text = open(V2_PATH).read()
SCHEMA = avro.schema.parse(schema_text)
V2 = avro.schema.parse(v2_text)

for label, text, parsed in (("v1", schema_text, SCHEMA), ("v2", v2_text, V2)):
    mine = pcf(json.loads(text))
    rc, c_pcf, err = tool("canonical", SCHEMA_PATH if label == "v1" else V2_PATH)
    check(rc == 0, f"{label}: tool canonical: {err}")
    check(c_pcf.strip() == mine, f"{label}: C PCF {c_pcf.strip()} != Python PCF {mine}")
    py_avro = json.dumps(collapse_primitives(json.loads(parsed.canonical_form)), separators=(",", ":"))
    check(py_avro == mine, f"{label}: python3-avro canonical_form {py_avro} != {mine}")
    rc, c_fp, err = tool("fingerprint", SCHEMA_PATH if label == "v1" else V2_PATH)
    check(int(c_fp, 16) == crc64_avro(mine.encode()), f"{label}: fingerprint {c_fp.strip()}")

FP1 = crc64_avro(pcf(json.loads(schema_text)).encode())
FP2 = crc64_avro(pcf(json.loads(v2_text)).encode())
check(FP1 != FP2, "v1 and v2 fingerprints differ")


# --- events: random datums of every type ---

def ts(ms):
    return EPOCH + datetime.timedelta(milliseconds=ms)


def ms(dt):
    return (dt - EPOCH) // datetime.timedelta(milliseconds=1)


def random_datum(rnd, etype, nviewers=None, v2=False):
    big = lambda: rnd.choice([1, 2, 63, 64, 127, 128, 8191, 8192, 2**31, 2**53 + 1, 2**62, 2**63 - 1, rnd.randrange(1, 2**63)])
    d = {
        "type": etype,
        "stream_id": 0 if etype == "HEARTBEAT" and rnd.random() < 0.7 else big(),
        "user_id": None,
        "conn_id": 0,
        "gateway_id": rnd.choice(["gw-1", "g", "gateway-eu-west-1a-17", "gw-\u00e9t\u00e9-\u20ac", "x" * 64]),
        "gateway_epoch": rnd.randrange(1, 2**45),
        "seq": rnd.choice([0, 1, rnd.randrange(0, 2**63)]),
        "ts_ms": ts(rnd.randrange(1, 253402300799000)),  # python's datetime ends in year 9999
        "reason": None,
        "sync": None,
    }
    if etype in ("JOIN", "LEAVE"):
        d["conn_id"] = big()
        d["user_id"] = rnd.choice([None, big()])
    if etype == "LEAVE":
        d["reason"] = rnd.choice(["CLIENT_CLOSED", "HEARTBEAT_TIMEOUT", "GATEWAY_SHUTDOWN", "REJECTED"])
    if etype == "SYNC":
        n = nviewers if nviewers is not None else rnd.randrange(0, 40)
        chunks = rnd.randrange(1, 2**31)
        d["sync"] = {
            "snapshot_id": rnd.randrange(0, 2**63),
            "chunk": rnd.randrange(0, chunks),
            "chunks": chunks,
            "viewers": [{"conn_id": big(), "user_id": rnd.choice([None, big()]), "joined_ms": rnd.randrange(1, 2**45)}
                        for _ in range(n)],
        }
        if v2:
            for v in d["sync"]["viewers"]:
                v["device"] = rnd.choice([None, "tv", "phone"])
    if v2:
        d["client"] = rnd.choice(["", "web", "ios", "android-tv"])
    return d


def as_json(d):
    """The datum as the tool reads and writes it (ts_ms as milliseconds)."""
    j = dict(d)
    j["ts_ms"] = ms(d["ts_ms"])
    return j


def body_of(schema, datum):
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def read_body(writer, reader, body):
    return avro.io.DatumReader(writer, reader).read(avro.io.BinaryDecoder(io.BytesIO(body)))


def single_object(fp, body):
    return b"\xc3\x01" + struct.pack("<Q", fp) + body


rnd = random.Random(20261124)
datums = [random_datum(rnd, t) for t in ["JOIN", "LEAVE", "HEARTBEAT", "SYNC"] for _ in range(60)]
datums.append(random_datum(rnd, "SYNC", nviewers=4096))
datums.append(random_datum(rnd, "SYNC", nviewers=0))

# C encodes -> Python decodes, and Python's own encoding is byte-identical.
rc, out, err = tool("encode", stdin="".join(json.dumps(as_json(d)) + "\n" for d in datums).encode())
check(rc == 0, f"tool encode: {err}")
lines = out.split()
check(len(lines) == len(datums), f"{len(lines)} encoded of {len(datums)}")
for d, line in zip(datums, lines):
    msg = bytes.fromhex(line)
    check(msg[:2] == b"\xc3\x01", "C3 01 marker")
    check(struct.unpack("<Q", msg[2:10])[0] == FP1, "fingerprint in the header")
    body = msg[10:]
    back = read_body(SCHEMA, SCHEMA, body)
    check(back == d, f"python read of C bytes differs: {back} != {d}")
    check(body_of(SCHEMA, d) == body, f"python encoding differs from C for {d['type']}")

# Python encodes single-object -> C decodes.
msgs = "".join(single_object(FP1, body_of(SCHEMA, d)).hex() + "\n" for d in datums)
rc, out, err = tool("decode", stdin=msgs.encode())
check(rc == 0, f"tool decode: {err} {out[:300]}")
for d, line in zip(datums, out.splitlines()):
    check(json.loads(line) == as_json(d), f"C read of python bytes differs: {line[:200]} != {as_json(d)}")

# Python's writer may split arrays into blocks with negative counts; C reads them.
d = random_datum(rnd, "SYNC", nviewers=5)
enc = avro.io.BinaryEncoder(io.BytesIO())
full = body_of(SCHEMA, d)
head = body_of(SCHEMA, dict(d, sync=dict(d["sync"], viewers=[])))[:-1]  # everything before the array
vschema = SCHEMA.fields_dict["sync"].type.schemas[1].fields_dict["viewers"].type.items
items = [body_of(vschema, v) for v in d["sync"]["viewers"]]


def zz(n):
    b = io.BytesIO()
    avro.io.BinaryEncoder(b).write_long(n)
    return b.getvalue()


blocked = head + zz(2) + items[0] + items[1] + zz(-3) + zz(len(b"".join(items[2:]))) + b"".join(items[2:]) + zz(0)
check(read_body(SCHEMA, SCHEMA, blocked) == d, "python reads its own blocked array")
rc, out, err = tool("decode", stdin=(single_object(FP1, blocked).hex() + "\n").encode())
check(rc == 0 and json.loads(out) == as_json(d), f"C reads a blocked array: {out} {err}")

# Errors come back as error values, not crashes.
bad = {
    "MAGIC": b"\xc3\x02" + single_object(FP1, full)[2:],
    "FINGERPRINT": single_object(FP1 ^ 1, full),
    "TRUNCATED": single_object(FP1, full[:-1]),
}
for code, m in bad.items():
    rc, out, err = tool("decode", stdin=(m.hex() + "\n").encode())
    check(rc == 2 and json.loads(out)["error"] == code, f"{code}: {out} {err}")
rc, out, err = tool("encode", stdin=json.dumps(dict(as_json(datums[0]), conn_id=0, type="JOIN")).encode() + b"\n")
check(rc == 2 and json.loads(out)["error"] == "INVALID", f"encode of an invalid event: {out}")

# --- evolution: data written with v2 ---

v2_datums = [random_datum(rnd, t, v2=True) for t in ["JOIN", "LEAVE", "HEARTBEAT", "SYNC"] for _ in range(15)]


def without_v2_fields(d):
    d = {k: v for k, v in d.items() if k != "client"}
    if d["sync"]:
        d["sync"] = dict(d["sync"], viewers=[{k: v for k, v in x.items() if k != "device"} for x in d["sync"]["viewers"]])
    return d


v2_msgs = [single_object(FP2, body_of(V2, d)) for d in v2_datums]
# A Python reader with the current (old) schema reads v2 data by resolution.
for d, m in zip(v2_datums, v2_msgs):
    check(struct.unpack("<Q", m[2:10])[0] == FP2, "v2 fingerprint")
    check(read_body(V2, SCHEMA, m[10:]) == without_v2_fields(d), "python old reader on v2 data")
# And v2 readers read our data, filling in the defaults.
for d in datums[:20]:
    back = read_body(SCHEMA, V2, body_of(SCHEMA, d))
    check(back.get("client") == "" and without_v2_fields(back) == d, "python v2 reader on v1 data")

stdin = "".join(m.hex() + "\n" for m in v2_msgs).encode()
# The C decoder rejects the unknown fingerprint ...
rc, out, err = tool("decode", stdin=stdin)
check(rc == 2 and all(json.loads(line)["error"] == "FINGERPRINT" for line in out.splitlines()),
      f"unregistered v2 must be FINGERPRINT: {out[:300]}")
# ... and reads it once v2 is registered.
rc, out, err = tool("decode", "--register", V2_PATH, stdin=stdin)
check(rc == 0, f"decode with v2 registered: {err} {out[:300]}")
for d, line in zip(v2_datums, out.splitlines()):
    check(json.loads(line) == as_json(without_v2_fields(d)), f"C read of v2: {line[:200]}")

# --- evolution: data written with an older schema (fields missing, with defaults) ---

OLDER = avro.schema.parse(open(OLDER_PATH).read())
FP0 = crc64_avro(pcf(json.loads(open(OLDER_PATH).read())).encode())


def older_datum(d):
    d = {k: v for k, v in d.items() if k != "reason"}
    if d["sync"]:
        d["sync"] = dict(d["sync"], viewers=[{k: v for k, v in x.items() if k != "user_id"} for x in d["sync"]["viewers"]])
    return d


old_src = [d for d in datums if d["type"] != "LEAVE"][:80]  # an older LEAVE has no reason: INVALID by contract
old_msgs = [single_object(FP0, body_of(OLDER, older_datum(d))) for d in old_src]
rc, out, err = tool("decode", "--register", OLDER_PATH, stdin="".join(m.hex() + "\n" for m in old_msgs).encode())
check(rc == 0, f"decode with the older schema registered: {err} {out[:300]}")
for m, line in zip(old_msgs, out.splitlines()):
    # Python's own resolution (filling the reader's defaults) is the reference.
    expect = read_body(OLDER, SCHEMA, m[10:])
    check(json.loads(line) == as_json(expect), f"C read of older data: {line[:200]} != {as_json(expect)}")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(datums)} v1 events both ways, {len(v2_datums)} v2 events, {len(old_msgs)} older events, "
      f"fingerprints {FP1:016x} {FP2:016x} {FP0:016x}")
