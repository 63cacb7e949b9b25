"""`make bench`: cxlake convert vs DuckDB vs Polars, CSV -> ZSTD Parquet, same inputs, same machine.

Runs are interleaved (cxlake, DuckDB, Polars, cxlake, ...) so that drift in the machine's speed
hits every tool alike; each figure is the median of REPEATS runs. Peak RSS is the child process's
own (wait4 rusage). Every tool gets 2 threads and the declared column types. Not a test: nothing
here asserts a timing. Writes BENCHMARKS.md.

Usage: compare.py CXLAKE_BIN DATA_DIR [REPEATS] [--convert]   (--convert: only the conversions)
       compare.py CXLAKE_BIN DATA_DIR --nightly  (only the 64-night lake; the rest from last-bench.json)
       compare.py CXLAKE_BIN DATA_DIR --sync     (only the windows-in-flight sync)
       compare.py CXLAKE_BIN DATA_DIR --sources  (only the per-source large windows, with peak RSS)
       compare.py CXLAKE_BIN DATA_DIR --render   (rewrite BENCHMARKS.md from DATA_DIR/last-bench.json)
"""
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CXLAKE, DATA = sys.argv[1], sys.argv[2]
RENDER_ONLY = len(sys.argv) > 3 and sys.argv[3] == "--render"
CONVERT_ONLY = "--convert" in sys.argv[4:]
REPEATS = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3].isdigit() else 3
PYTHON = sys.executable
DATE = "2024-03-01"
THREADS = "2"

# Arrow type of each declared column -> DuckDB / Polars spelling.
DUCK = {"Utf8": "VARCHAR", "Int64": "BIGINT", "Float64": "DOUBLE", "Boolean": "BOOLEAN", "Date32": "DATE"}
POLARS = {"Utf8": "pl.Utf8", "Int64": "pl.Int64", "Float64": "pl.Float64", "Boolean": "pl.Boolean", "Date32": "pl.Date"}


def declared_columns(dataset):
    out = subprocess.run([CXLAKE, "schema", "show", f"saltedcx.{dataset}"], check=True, capture_output=True, text=True).stdout
    columns = []
    for line in out.splitlines()[2:]:
        name, rest = line.split(None, 1)
        arrow_type = rest[:30].strip()
        columns.append((name, arrow_type))
    return columns


def duck_type(t):
    return "TIMESTAMPTZ" if t.startswith("Timestamp") else DUCK[t]


def polars_type(t):
    return 'pl.Datetime("us", "UTC")' if t.startswith("Timestamp") else POLARS[t]


def run(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS bytes, CPU seconds) of that child alone."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        if status != 0:
            err.seek(0)
            raise SystemExit(f"{cmd[0]} failed ({status}): {err.read().decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def cxlake_variants(qualified, path, out_dir, env, output):
    """cxlake with default flags (the raw archive on), with `--raw off`, and with `--raw off` on
    one core (`taskset`, `--threads 1`) for the scaling figure."""
    def command(name, *extra, cores=None):
        cmd = [CXLAKE, "convert", qualified, "--date", DATE, "--dest", f"{out_dir}/{name}", path,
               "--log", "warn", "--no-current-tables", *extra]
        if cores:
            cmd = ["taskset", "-c", cores] + cmd
        return (cmd, env, f"{out_dir}/{name}/{output}")

    return {
        "cxlake": command("cxlake"),
        "cxlake-raw-off": command("cxlake-raw-off", "--raw", "off"),
        "cxlake-1-core": command("cxlake-1-core", "--raw", "off", "--threads", "1", cores="0"),
    }


def tools(dataset, csv_path, out_dir):
    columns = declared_columns(dataset)
    duck_columns = "{" + ", ".join(f"'{n}': '{duck_type(t)}'" for n, t in columns) + "}"
    duck_sql = (
        f"SET threads = {THREADS}; COPY (SELECT * FROM read_csv('{csv_path}', header = true, columns = {duck_columns})) "
        f"TO '{out_dir}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)"
    )
    polars_schema = "{" + ", ".join(f"{n!r}: {polars_type(t)}" for n, t in columns) + "}"
    polars_code = (
        "import polars as pl\n"
        f"pl.scan_csv({csv_path!r}, schema={polars_schema}).sink_parquet({out_dir + '/polars.parquet'!r}, compression='zstd')\n"
    )
    env = dict(os.environ, POLARS_MAX_THREADS=THREADS, RAYON_NUM_THREADS=THREADS)
    return {
        **cxlake_variants(f"saltedcx.{dataset}", csv_path, out_dir, env, f"saltedcx/{dataset}"),
        "duckdb": ([PYTHON, "-c", f"import duckdb; duckdb.connect().execute({duck_sql!r})"], env, f"{out_dir}/duckdb.parquet"),
        "polars": ([PYTHON, "-c", polars_code], env, f"{out_dir}/polars.parquet"),
    }


def declared_tree(qualified):
    """(name, arrow type, members) of every column, members for Struct / List(Struct) columns."""
    out = subprocess.run([CXLAKE, "schema", "show", qualified], check=True, capture_output=True, text=True).stdout
    columns = []
    for line in out.splitlines()[2:]:
        name, arrow_type = line[:39].strip(), line[39:69].strip()
        if name.startswith("."):
            columns[-1][2].append((name[1:], arrow_type))
        else:
            columns.append((name, arrow_type, []))
    return columns


# Dixa sends times as epoch milliseconds: cxlake lands them as timestamps (µs); the peers are
# asked only for the integers, which is less work than ours. A custom field's value is a string
# or a list of strings in the same array: DuckDB keeps it as JSON, Polars skips it.
def duck_json_type(name, t, members=()):
    if t == "List(Struct)":
        return "STRUCT(" + ", ".join(f'"{n}" {duck_json_type(n, m)}' for n, m in members) + ")[]"
    if name == "value" and t == "List(Utf8)":
        return "JSON"
    if t.startswith("Timestamp"):
        return "BIGINT"
    if t == "List(Utf8)":
        return "VARCHAR[]"
    return DUCK[t]


def polars_json_type(name, t, members=()):
    if t == "List(Struct)":
        # Polars has no type for "a string or a list of strings": it is not asked for that member.
        kept = [(n, m) for n, m in members if not (n == "value" and m == "List(Utf8)")]
        return "pl.List(pl.Struct({" + ", ".join(f"{n!r}: {polars_json_type(n, m)}" for n, m in kept) + "}))"
    if t.startswith("Timestamp"):
        return "pl.Int64"
    if t == "List(Utf8)":
        return "pl.List(pl.Utf8)"
    return POLARS[t]


def json_tools(qualified, json_path, ndjson_path, out_dir):
    columns = declared_tree(qualified)
    duck_columns = "{" + ", ".join(f"'{n}': '{duck_json_type(n, t, m)}'" for n, t, m in columns) + "}"
    duck_sql = (
        f"SET threads = {THREADS}; COPY (SELECT * FROM read_json('{json_path}', format = 'array', columns = {duck_columns})) "
        f"TO '{out_dir}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)"
    )
    polars_schema = "{" + ", ".join(f"{n!r}: {polars_json_type(n, t, m)}" for n, t, m in columns) + "}"
    polars_array = (
        "import polars as pl\n"
        f"pl.read_json({json_path!r}, schema={polars_schema}).write_parquet({out_dir + '/polars.parquet'!r}, compression='zstd')\n"
    )
    polars_ndjson = (
        "import polars as pl\n"
        f"pl.scan_ndjson({ndjson_path!r}, schema={polars_schema}).sink_parquet({out_dir + '/polars-ndjson.parquet'!r}, compression='zstd')\n"
    )
    env = dict(os.environ, POLARS_MAX_THREADS=THREADS, RAYON_NUM_THREADS=THREADS)
    return {
        **cxlake_variants(qualified, json_path, out_dir, env, "dixa"),
        "duckdb": ([PYTHON, "-c", f"import duckdb; duckdb.connect().execute({duck_sql!r})"], env, f"{out_dir}/duckdb.parquet"),
        "polars": ([PYTHON, "-c", polars_array], env, f"{out_dir}/polars.parquet"),
        "polars-ndjson": ([PYTHON, "-c", polars_ndjson], env, f"{out_dir}/polars-ndjson.parquet"),
    }


def ndjson_copy(json_path):
    """The same records one per line, for Polars' streaming NDJSON reader (written once, not timed)."""
    ndjson_path = json_path[: -len(".json")] + ".ndjson"
    if not os.path.exists(ndjson_path) or os.path.getmtime(ndjson_path) < os.path.getmtime(json_path):
        # In a child process: a forked child starts with its parent's peak RSS, so this process
        # must never hold the parsed file or every later measurement would report its size.
        code = (
            "import json, sys\n"
            "records = json.load(open(sys.argv[1], encoding='utf-8'))\n"
            "with open(sys.argv[2], 'w', encoding='utf-8') as out:\n"
            "    for record in records:\n"
            "        out.write(json.dumps(record, ensure_ascii=False) + '\\n')\n"
        )
        subprocess.run([PYTHON, "-c", code, json_path, ndjson_path + ".tmp"], check=True)
        os.replace(ndjson_path + ".tmp", ndjson_path)
    return ndjson_path


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def main():
    import duckdb
    import polars

    rows = []
    inputs = [("engagement", "engagements.csv"), ("turn", "turns.csv"), ("conversation", "conversations.json")]
    for dataset, file in inputs:
        path = os.path.join(DATA, file)
        if not os.path.exists(path):
            continue
        mb = os.path.getsize(path) / 1e6
        if file.endswith(".json"):
            ndjson = ndjson_copy(path)
            commands = lambda out_dir: json_tools(f"dixa.{dataset}", path, ndjson, out_dir)
        else:
            commands = lambda out_dir: tools(dataset, path, out_dir)
        results = {name: [] for name in commands("/nonexistent")}
        sizes = {}
        for _ in range(REPEATS):
            for name in results:
                out_dir = tempfile.mkdtemp(prefix=f"bench-{name}-")
                try:
                    cmd, env, output = commands(out_dir)[name]
                    results[name].append(run(cmd, env)[:2])
                    sizes[name] = size_of(output)
                finally:
                    shutil.rmtree(out_dir, ignore_errors=True)
        best_peer = None
        for name, runs in results.items():
            seconds = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            row = {"dataset": dataset, "tool": name, "csv_mb": mb, "seconds": seconds, "mb_per_s": mb / seconds,
                   "peak_rss_mib": rss / 2**20, "output_mb": sizes[name] / 1e6}
            rows.append(row)
            if not name.startswith("cxlake") and (best_peer is None or row["mb_per_s"] > best_peer["mb_per_s"]):
                best_peer = row
        duck = next(r for r in rows if r["dataset"] == dataset and r["tool"] == "duckdb")
        one_core = next(r for r in rows if r["dataset"] == dataset and r["tool"] == "cxlake-1-core")
        for ours in (r for r in rows if r["dataset"] == dataset and r["tool"] in ("cxlake", "cxlake-raw-off")):
            ours["ratio_to_best_peer"] = ours["mb_per_s"] / best_peer["mb_per_s"]
            ours["best_peer"] = best_peer["tool"]
            ours["size_vs_duckdb"] = ours["output_mb"] / duck["output_mb"]
            if ours["tool"] == "cxlake-raw-off":
                ours["scaling"] = ours["mb_per_s"] / one_core["mb_per_s"]

    path = os.path.join(DATA, "last-bench.json")
    last = json.load(open(path)) if os.path.exists(path) else {}
    last["convert"] = rows
    parts = (("sync", sync_bench), ("nightly", nightly_bench), ("workers", workers_bench), ("sources", sources_bench))
    if not CONVERT_ONLY:
        # A full run keeps no figure of an earlier one.
        for part, _ in parts:
            last.pop(part, None)

    def save():
        json.dump(last, open(path, "w"), indent=2)

    save()
    if not CONVERT_ONLY:
        # Each part is saved as soon as it is measured: a run stopped later keeps what it measured
        # (the parts can be run again alone, see the usage above).
        for part, bench in parts:
            last[part] = bench()
            save()
    write_report(rows, last.get("sync"), last.get("nightly"), last.get("workers"), last.get("sources"))


SYNC_DAYS = 6

# The emulator's days pass in seconds: a backfill creates more exports in an hour than a tenant
# would, and Salted CX's creation cap (`--max-export-rate`, 60 an hour by default) would make the
# run wait out the hour. Lifted here as in the tests; a real tenant's cap is kept by default.
UNCAPPED = ["--max-export-rate", "100000/1h"]
SYNC_ENGAGEMENTS = os.environ.get("BENCH_SYNC_ENGAGEMENTS", "20000")


def sync_bench():
    """A multi-day sync from the emulator with 1, 2 and 3 windows in flight: the emulator holds
    each export PROCESSING for 3 polls (~4.8 s with --poll-interval 1s), as a platform would."""
    emulator, env = start_emulator(SYNC_ENGAGEMENTS, 3)
    try:
        to = (datetime.date.fromisoformat(DATE) + datetime.timedelta(days=SYNC_DAYS)).isoformat()
        rows = []
        for parallel in (1, 2, 3):
            out_dir = tempfile.mkdtemp(prefix="bench-sync-")
            report = os.path.join(out_dir, "report.json")
            try:
                cmd = [CXLAKE, "sync", "saltedcx", "--dest", f"{out_dir}/lake", "--from", DATE, "--to", to,
                       *UNCAPPED, "--poll-interval", "1s", "--parallel-windows", str(parallel), "--no-current-tables",
                       "--report-json", report, "--log", "warn"]
                seconds, rss, cpu = run(cmd, env)
                windows = json.load(open(report))["windows"]
                landed = sum(d["rows_written"] for w in windows for d in w["datasets"].values())
                rows.append({"parallel_windows": parallel, "days": len(windows), "rows": landed, "seconds": seconds,
                             "peak_rss_mib": rss / 2**20, "cpu_percent": 100 * cpu / seconds,
                             "parquet_mb": size_of(f"{out_dir}/lake/saltedcx") / 1e6})
            finally:
                shutil.rmtree(out_dir, ignore_errors=True)
        return rows
    finally:
        emulator.terminate()
        emulator.wait()


WORKER_DAYS = 12


WORKER_TENANTS = ("2000", SYNC_ENGAGEMENTS)


def workers_bench():
    """One 12-day sync from the emulator by 1, 2 and 4 processes into one lake, each syncing one
    shard (`--shard I/N`) of the range, as a fan-out does: wall time and the CPU every cxlake
    process used (the emulator's own CPU is not counted; it shares the 2 cores). Twice: small
    days, where the platform's export time dominates, and large ones, where conversion does."""
    rows = []
    for engagements in WORKER_TENANTS:
        emulator, env = start_emulator(engagements, 3)
        try:
            to = (datetime.date.fromisoformat(DATE) + datetime.timedelta(days=WORKER_DAYS)).isoformat()
            for workers in (1, 2, 4):
                out_dir = tempfile.mkdtemp(prefix="bench-workers-")
                try:
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.monotonic()
                    procs = [subprocess.Popen(
                        [CXLAKE, "sync", "saltedcx", "--dest", f"{out_dir}/lake", "--from", DATE, "--to", to, *UNCAPPED,
                         "--poll-interval", "1s", "--shard", f"{i}/{workers}", "--log", "warn",
                         "--progress", "never", "--report-json", f"{out_dir}/report-{i}.json"],
                        env=env, stdout=subprocess.DEVNULL) for i in range(workers)]
                    codes = [p.wait() for p in procs]
                    seconds = time.monotonic() - started
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if any(codes):
                        raise SystemExit(f"a worker failed: exit codes {codes}")
                    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    landed = 0
                    for i in range(workers):
                        windows = json.load(open(f"{out_dir}/report-{i}.json"))["windows"]
                        landed += sum(d["rows_written"] for w in windows for d in w["datasets"].values())
                    rows.append({"engagements_per_day": int(engagements), "workers": workers,
                                 "days": WORKER_DAYS, "rows": landed, "seconds": seconds, "cpu_seconds": cpu})
                finally:
                    shutil.rmtree(out_dir, ignore_errors=True)
        finally:
            emulator.terminate()
            emulator.wait()
    return rows


def workers_table(rows):
    if not rows:
        return "(not measured)"
    lines = [f"{'engagements/day':<16} {'workers':>7} {'days':>5} {'rows':>10} {'wall s':>7} {'CPU s':>7}  speed-up"]
    for r in rows:
        base = next(b["seconds"] for b in rows
                    if b["workers"] == 1 and b.get("engagements_per_day") == r.get("engagements_per_day"))
        lines.append(f"{r.get('engagements_per_day', ''):<16} {r['workers']:>7} {r['days']:>5} {r['rows']:>10} "
                     f"{r['seconds']:>7.1f} {r['cpu_seconds']:>7.1f}  {base / r['seconds']:.2f}x")
    return "\n".join(lines)


NIGHTLY_ENGAGEMENTS = os.environ.get("BENCH_NIGHTLY_ENGAGEMENTS", "20000")
NIGHTLY_FIRST = datetime.date(2024, 1, 1)


# One large window of each platform (sizes overridable for a quick look).
SOURCE_ENGAGEMENTS = os.environ.get("BENCH_SOURCE_ENGAGEMENTS", "370000")
SOURCE_DIXA_CONVERSATIONS = os.environ.get("BENCH_SOURCE_DIXA", "370000")
SOURCE_LOOP_CONVERSATIONS = os.environ.get("BENCH_SOURCE_LOOP", "1400000")
SOURCE_KHOROS_AGENTS = os.environ.get("BENCH_SOURCE_KHOROS_AGENTS", "2000")
SOURCE_SPARKCENTRAL_ROWS = os.environ.get("BENCH_SOURCE_SPARKCENTRAL_ROWS", "360000")


def start_platform(args):
    """Starts `cxlake emulator ARGS --port 0`; returns it and the environment it prints."""
    emulator = subprocess.Popen([CXLAKE, "emulator", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
    env = dict(os.environ)
    for line in emulator.stdout:
        if line.strip().startswith("export "):
            key, value = line.strip()[len("export "):].split("=", 1)
            env[key] = value
        if line.startswith("Press Ctrl-C"):
            break
    return emulator, env


def sources_bench():
    """A large window of every platform through `sync` against its emulator (default flags: raw
    archive on, current tables built), with the whole process's peak RSS, and the first
    current-table build of the Loop window on its own. The emulator runs on the same 2 cores."""
    day, next_day = DATE, (datetime.date.fromisoformat(DATE) + datetime.timedelta(days=1)).isoformat()
    fast = ["--poll-interval", "200ms"]
    tree = tempfile.mkdtemp(prefix="bench-sparkcentral-tree-")
    cases = [
        (f"saltedcx, 1 day of {int(SOURCE_ENGAGEMENTS):,} engagements",
         ["saltedcx", "--port", "0", "--engagements-per-day", SOURCE_ENGAGEMENTS, "--processing-polls", "1"],
         ["saltedcx", "--from", day, "--to", next_day, *fast]),
        (f"dixa, 1 day of {int(SOURCE_DIXA_CONVERSATIONS):,} conversations",
         ["dixa", "--port", "0", "--conversations-per-day", SOURCE_DIXA_CONVERSATIONS, "--rate-limit", "0"],
         ["dixa", "--from", day, "--to", next_day, "--requests-per-minute", "600"]),
        (f"khoros, 1 year of {int(SOURCE_KHOROS_AGENTS):,} agents",
         ["khoros", "--port", "0", "--agents", SOURCE_KHOROS_AGENTS, "--running-polls", "0"],
         ["khoros", "--from", "2023-03-01", "--to", "2024-03-01", *fast]),
        (f"loop JSON, 1 day of {int(SOURCE_LOOP_CONVERSATIONS):,} conversations",
         ["loop", "--port", "0", "--conversations-per-day", SOURCE_LOOP_CONVERSATIONS, "--running-polls", "0"],
         ["loop", "--from", day, "--to", next_day, *fast]),
        (f"loop XLSX, 1 day of {int(SOURCE_LOOP_CONVERSATIONS):,} conversations",
         ["loop", "--port", "0", "--conversations-per-day", SOURCE_LOOP_CONVERSATIONS, "--running-polls", "0"],
         ["loop", "--from", day, "--to", next_day, "--loop-format", "xlsx", *fast]),
        (f"sparkcentral, a tree of {int(SOURCE_SPARKCENTRAL_ROWS):,} rows per file",
         ["sparkcentral", "--out", tree, "--from", day, "--days", "1", "--rows-per-file", SOURCE_SPARKCENTRAL_ROWS],
         ["sparkcentral", "--from", day, "--to", next_day]),
    ]
    rows = []
    try:
        for label, emulator_args, sync_args in cases:
            emulator, env = start_platform(emulator_args)
            out_dir = tempfile.mkdtemp(prefix="bench-source-")
            report = os.path.join(out_dir, "report.json")
            try:
                json_loop = label.startswith("loop JSON")
                cmd = [CXLAKE, "sync", *sync_args, "--dest", f"{out_dir}/lake", "--report-json", report,
                       "--log", "warn"] + (["--no-current-tables"] if json_loop else [])
                seconds, rss, cpu = run(cmd, env)
                parsed = json.load(open(report))
                windows = parsed["windows"]
                landed = sum(d["rows_written"] for w in windows for d in w["datasets"].values())
                if not all(w["outcome"] == "committed" for w in windows):
                    raise SystemExit(f"{label}: not every window committed: {[w['outcome'] for w in windows]}")
                memory = parsed.get("memory", {})
                rows.append({"case": label, "windows": len(windows), "rows": landed, "seconds": seconds,
                             "cpu_seconds": cpu, "peak_rss_mib": rss / 2**20,
                             "peak_heap_mib": memory.get("peak_heap_mib"),
                             "lake_mb": size_of(f"{out_dir}/lake") / 1e6})
                if json_loop:
                    cmd = [CXLAKE, "current", "--dest", f"{out_dir}/lake", "--log", "warn"]
                    seconds, rss, cpu = run(cmd, env)
                    rows.append({"case": "loop JSON: first current-table build", "windows": 1, "rows": landed,
                                 "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": rss / 2**20,
                                 "peak_heap_mib": None, "lake_mb": size_of(f"{out_dir}/lake") / 1e6})
                print(json.dumps(rows[-1]), flush=True)
            finally:
                emulator.terminate()
                emulator.wait()
                shutil.rmtree(out_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return rows


def sources_table(rows):
    if not rows:
        return "(not measured in this run)"
    lines = [f"{'case':<52} {'windows':>7} {'rows':>10} {'secs':>7} {'CPU s':>7} {'lake MB':>8} {'peak RSS MiB':>13} {'heap MiB':>9}"]
    for r in rows:
        heap = "" if r.get("peak_heap_mib") is None else f"{r['peak_heap_mib']:.0f}"
        lines.append(f"{r['case']:<52} {r['windows']:>7} {r['rows']:>10} {r['seconds']:>7.1f} {r['cpu_seconds']:>7.1f} "
                     f"{r['lake_mb']:>8.0f} {r['peak_rss_mib']:>13.0f} {heap:>9}")
    return "\n".join(lines)


def start_emulator(engagements, processing_polls):
    return start_platform(["saltedcx", "--port", "0", "--engagements-per-day", engagements,
                           "--processing-polls", str(processing_polls), "--api-key", "bench-key"])


def nightly_bench():
    """One lake grown night by night from the emulator: the nightly syncs of days 1-3, day 4 with
    --lookback-days 2, a backfill to day 60, days 61-63, day 64 with lookback 2 — and what a full
    rebuild of the current tables costs at the end, which is what every night cost before
    current tables were incremental."""
    emulator, env = start_emulator(NIGHTLY_ENGAGEMENTS, 1)
    out_dir = tempfile.mkdtemp(prefix="bench-nightly-")
    lake = f"{out_dir}/lake"
    rows = []

    def night(label, to_day, extra, measured=True):
        to = (NIGHTLY_FIRST + datetime.timedelta(days=to_day)).isoformat()
        report = os.path.join(out_dir, "report.json")
        cmd = [CXLAKE, "sync", "saltedcx", "--dest", lake, "--to", to, *UNCAPPED, "--poll-interval", "100ms",
               "--report-json", report, "--log", "warn"] + extra
        seconds, rss, _ = run(cmd, env)
        if not measured:
            return
        r = json.load(open(report))
        current = r.get("current", [])
        rows.append({
            "night": label, "windows": len(r["windows"]), "seconds": seconds, "peak_rss_mib": rss / 2**20,
            "rows_landed": sum(d["rows_written"] for w in r["windows"] for d in w["datasets"].values()),
            "history_mb_written": sum(d["bytes"] for w in r["windows"] for d in w["datasets"].values()) / 1e6,
            "current_seconds": sum(c["seconds"] for c in current),
            "current_mb_read": sum(c["bytes_read"] for c in current) / 1e6,
            "current_mb_written": sum(c["bytes_written"] for c in current) / 1e6,
            "current_rows": sum(c["rows"] for c in current),
            "modes": ",".join(sorted({c["mode"] for c in current})),
        })

    def median_of(label, first):
        # Three nights in a row, reported as their median: one night alone is within the noise.
        measured = rows[first:]
        del rows[first:]
        row = sorted(measured, key=lambda r: r["seconds"])[1]
        rows.append(dict(row, night=label, peak_rss_mib=max(r["peak_rss_mib"] for r in measured)))

    try:
        night("day 1", 1, ["--from", NIGHTLY_FIRST.isoformat()])
        night("day 2", 2, [])
        night("day 3", 3, [])
        median_of("days 1-3 (median)", 0)
        night("day 4 (lookback 2)", 4, ["--lookback-days", "2"])
        night("days 5-60 (backfill)", 60, [], measured=False)
        night("day 61", 61, [])
        night("day 62", 62, [])
        night("day 63", 63, [])
        median_of("days 61-63 (median)", 2)
        night("day 64 (lookback 2)", 64, ["--lookback-days", "2"])
        seconds, rss, _ = run([CXLAKE, "current", "--dest", lake, "--full", "--log", "warn"])
        rows.append({"night": "current --full at day 64", "windows": 0, "seconds": seconds,
                     "peak_rss_mib": rss / 2**20, "rows_landed": 0, "history_mb_written": 0.0,
                     "current_seconds": seconds, "current_mb_read": None, "current_mb_written": None,
                     "current_rows": None, "modes": "full"})
        rows[-1]["lake_mb"] = size_of(lake) / 1e6
        return rows
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        emulator.terminate()
        emulator.wait()


def nightly_table(nightly_rows):
    if not nightly_rows:
        return "(not measured)"
    lines = [f"{'night':<26} {'windows':>7} {'secs':>6} {'vs day 1':>8} {'RSS MiB':>8} {'rows':>9} "
             f"{'history MB':>10} {'current s':>9} {'cur. MB read':>12} {'cur. MB written':>15}"]
    base = nightly_rows[0]["seconds"]
    for r in nightly_rows:
        read = "" if r["current_mb_read"] is None else f"{r['current_mb_read']:.1f}"
        written = "" if r["current_mb_written"] is None else f"{r['current_mb_written']:.1f}"
        lines.append(f"{r['night']:<26} {r['windows']:>7} {r['seconds']:>6.2f} {r['seconds'] / base:>7.2f}x "
                     f"{r['peak_rss_mib']:>8.0f} {r['rows_landed']:>9} {r['history_mb_written']:>10.1f} "
                     f"{r['current_seconds']:>9.2f} {read:>12} {written:>15}")
    return "\n".join(lines)


def sync_table(sync_rows):
    if not sync_rows:
        return "(not measured)"
    lines = [f"{'windows in flight':<18} {'days':>5} {'rows':>10} {'secs':>7} {'peak RSS MiB':>13} {'CPU %':>6}  speed-up"]
    base = sync_rows[0]["seconds"]
    for r in sync_rows:
        lines.append(f"{r['parallel_windows']:<18} {r['days']:>5} {r['rows']:>10} {r['seconds']:>7.1f} "
                     f"{r['peak_rss_mib']:>13.0f} {r['cpu_percent']:>6.0f}  {base / r['seconds']:.2f}x")
    return "\n".join(lines)


def write_report(rows, sync_rows=None, nightly_rows=None, worker_rows=None, source_rows=None):
    import duckdb
    import polars

    header = f"{'dataset':<12} {'tool':<15} {'in MB':>8} {'secs':>7} {'MB/s':>7} {'peak RSS MiB':>13} {'out MB':>8}  vs best peer"
    lines = [header]
    for r in rows:
        extra = f"{r['ratio_to_best_peer']:.2f}x {r['best_peer']}, size {r['size_vs_duckdb']:.2f}x duckdb" if "ratio_to_best_peer" in r else ""
        if "scaling" in r:
            extra += f", {r['scaling']:.2f}x its 1 core"
        lines.append(f"{r['dataset']:<12} {r['tool']:<15} {r['csv_mb']:>8.0f} {r['seconds']:>7.2f} {r['mb_per_s']:>7.1f} "
                     f"{r['peak_rss_mib']:>13.0f} {r['output_mb']:>8.1f}  {extra}")
    table = "\n".join(lines)
    print(table)
    print(sync_table(sync_rows))
    print(nightly_table(nightly_rows))
    print(workers_table(worker_rows))
    print(sources_table(source_rows))
    versions = f"duckdb {duckdb.__version__}, polars {polars.__version__}, {subprocess.run([CXLAKE, '--version'], capture_output=True, text=True).stdout.strip()}"
    with open("BENCHMARKS.md.new", "w") as f:
        f.write(render_markdown(table, versions, rows).replace("{{SYNC_TABLE}}", sync_table(sync_rows))
                .replace("{{NIGHTLY_TABLE}}", nightly_table(nightly_rows))
                .replace("{{WORKERS_TABLE}}", workers_table(worker_rows))
                .replace("{{SOURCES_TABLE}}", sources_table(source_rows)))
    os.replace("BENCHMARKS.md.new", "BENCHMARKS.md")


def render_markdown(table, versions, rows):
    template = open(os.path.join(os.path.dirname(__file__), "BENCHMARKS.template.md")).read()
    return (template.replace("{{MACHINE}}", machine()).replace("{{VERSIONS}}", versions)
            .replace("{{TABLE}}", table).replace("{{REPEATS}}", str(REPEATS))
            .replace("{{DATE}}", time.strftime("%Y-%m-%d")))


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[3] in ("--nightly", "--sync", "--workers", "--sources"):
        # Only one of the sync benchmarks, merged into the last full run's figures.
        path = os.path.join(DATA, "last-bench.json")
        last = json.load(open(path)) if os.path.exists(path) else {"convert": [], "sync": None}
        if sys.argv[3] == "--nightly":
            last["nightly"] = nightly_bench()
        elif sys.argv[3] == "--workers":
            last["workers"] = workers_bench()
        elif sys.argv[3] == "--sources":
            last["sources"] = sources_bench()
        else:
            last["sync"] = sync_bench()
        json.dump(last, open(path, "w"), indent=2)
        write_report(last["convert"], last.get("sync"), last.get("nightly"), last.get("workers"), last.get("sources"))
    elif RENDER_ONLY:
        last = json.load(open(os.path.join(DATA, "last-bench.json")))
        if isinstance(last, list):  # written before the sync benchmark existed
            last = {"convert": last, "sync": None}
        write_report(last["convert"], last.get("sync"), last.get("nightly"), last.get("workers"), last.get("sources"))
    else:
        main()
