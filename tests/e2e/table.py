#!/usr/bin/env python3
"""tests/e2e/table.py BUILD_DIR [--update README.md] [--command "..."]

Collects the e2e cases' results (BUILD_DIR/tests/e2e-work/results/<case>.json,
written by tests/e2e/e2e.sh) into a Markdown table: case, fault, recovery
seconds, counts exact, database equal to the reference run, leftovers, the
case's wall time. Prints it; with --update, replaces the part of README.md
between the markers <!-- e2e-table --> and <!-- /e2e-table --> with the table,
the date, the machine and the command that produced it.
"""
import datetime
import glob
import json
import os
import platform
import sys

# The order of tests/e2e/CMakeLists.txt.
ORDER = ["steady", "gateway_kill", "gateway_term", "aggregator_kill", "sink_kill", "redis_failover",
         "redis_flushall", "mariadb_restart", "broker"]
BEGIN, END = "<!-- e2e-table -->", "<!-- /e2e-table -->"


def yes(v):
    return "?" if v is None else ("yes" if v else "**NO**")


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} cores ({model}), {mem} RAM, load average {load} at the end"


def table(results):
    rows = ["| case | fault | recovery (s) | counts exact | DB equal | leftovers | passed | case time (s) |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        rec = r.get("recovery_seconds")
        kind = r.get("recovery_kind")
        if kind == "none":
            rec_s = "-"
        elif rec is None:
            rec_s = "**not recovered**"
        else:
            rec_s = f"{rec:.1f}" + (" (database)" if kind == "db" else "")
        left = r.get("leftovers")
        left_s = "?" if left is None else ("none" if left == 0 else f"**{left}**")
        rows.append(f"| `{r['case']}` | {r['fault']} | {rec_s} | {yes(r.get('counts_exact'))} | "
                    f"{yes(r.get('db_equal'))} | {left_s} | {yes(r.get('passed'))} | {r.get('wall_seconds', '?')} |")
    return "\n".join(rows)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    build, update, command = args[0], None, None
    rest = args[1:]
    while rest:
        if rest[0] == "--update" and len(rest) > 1:
            update, rest = rest[1], rest[2:]
        elif rest[0] == "--command" and len(rest) > 1:
            command, rest = rest[1], rest[2:]
        else:
            sys.exit(__doc__)
    files = glob.glob(os.path.join(build, "tests", "e2e-work", "results", "*.json"))
    if not files:
        sys.exit(f"table.py: no results in {build}/tests/e2e-work/results (run the cases first)")
    results = [json.load(open(f)) for f in files]
    results.sort(key=lambda r: (ORDER.index(r["case"]) if r["case"] in ORDER else len(ORDER), r["case"]))
    t = table(results)
    newest = max(os.path.getmtime(f) for f in files)
    when = datetime.datetime.fromtimestamp(newest, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(r.get("wall_seconds", 0) for r in results)
    command = command or f"ctest --test-dir {build} -R '^e2e_'; python3 tests/e2e/table.py {build} --update tests/e2e/README.md"
    block = (f"{BEGIN}\n{t}\n\nRecovery: for the counts, from the fault (for `broker`, from the broker's return) "
             f"to the first check at which every count equalled the truth, an upper bound (the checkpoint "
             f"starts 1 s after the fault and evaluates every 0.5 s); \"(database)\": from the fault until the "
             f"sink had stored everything produced before it. Case time: from `stack up` to the end of the "
             f"checks (the stack's stop comes on top).\n\n{len(results)} cases, {total} s of case time in all. "
             f"Run {when} on {machine()}, "
             f"build with `-DVC_SANITIZE=ON` (ASan + UBSan), produced by\n`{command}`.\n{END}")
    print(block)
    if update:
        text = open(update).read()
        if BEGIN not in text or END not in text:
            sys.exit(f"table.py: {update} has no {BEGIN} ... {END} markers")
        a, b = text.index(BEGIN), text.index(END) + len(END)
        open(update, "w").write(text[:a] + block + text[b:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
