"""`make bench`: cxlake convert vs DuckDB vs Polars, CSV -> ZSTD Parquet, same inputs, same machine.

Runs are interleaved (cxlake, DuckDB, Polars, cxlake, ...) so that drift in the machine's speed
hits every tool alike; each figure is the median of REPEATS runs. Peak RSS is the child process's
own (wait4 rusage). Every tool gets 2 threads and the declared column types. Not a test: nothing
here asserts a timing. Writes BENCHMARKS.md.

Usage: compare.py CXLAKE_BIN DATA_DIR [REPEATS]
       compare.py CXLAKE_BIN DATA_DIR --render   (rewrite BENCHMARKS.md from DATA_DIR/last-bench.json)
"""
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CXLAKE, DATA = sys.argv[1], sys.argv[2]
RENDER_ONLY = len(sys.argv) > 3 and sys.argv[3] == "--render"
REPEATS = int(sys.argv[3]) if len(sys.argv) > 3 and not RENDER_ONLY else 3
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
        "cxlake": ([CXLAKE, "convert", f"saltedcx.{dataset}", "--date", DATE, "--dest", f"{out_dir}/cxlake", csv_path,
                    "--log", "warn", "--no-current-tables"], env, f"{out_dir}/cxlake/saltedcx/{dataset}"),
        "duckdb": ([PYTHON, "-c", f"import duckdb; duckdb.connect().execute({duck_sql!r})"], env, f"{out_dir}/duckdb.parquet"),
        "polars": ([PYTHON, "-c", polars_code], env, f"{out_dir}/polars.parquet"),
    }


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
    for dataset, file in [("engagement", "engagements.csv"), ("turn", "turns.csv")]:
        csv_path = os.path.join(DATA, file)
        mb = os.path.getsize(csv_path) / 1e6
        results = {name: [] for name in ("cxlake", "duckdb", "polars")}
        sizes = {}
        for _ in range(REPEATS):
            for name in results:
                out_dir = tempfile.mkdtemp(prefix=f"bench-{name}-")
                try:
                    cmd, env, output = tools(dataset, csv_path, out_dir)[name]
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
            if name != "cxlake" and (best_peer is None or row["mb_per_s"] > best_peer["mb_per_s"]):
                best_peer = row
        ours = next(r for r in rows if r["dataset"] == dataset and r["tool"] == "cxlake")
        ours["ratio_to_best_peer"] = ours["mb_per_s"] / best_peer["mb_per_s"]
        ours["best_peer"] = best_peer["tool"]
        duck = next(r for r in rows if r["dataset"] == dataset and r["tool"] == "duckdb")
        ours["size_vs_duckdb"] = ours["output_mb"] / duck["output_mb"]

    sync_rows = sync_bench()
    json.dump({"convert": rows, "sync": sync_rows}, open(os.path.join(DATA, "last-bench.json"), "w"), indent=2)
    write_report(rows, sync_rows)


SYNC_DAYS = 6
SYNC_ENGAGEMENTS = os.environ.get("BENCH_SYNC_ENGAGEMENTS", "20000")


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sync_bench():
    """A multi-day sync from the emulator with 1, 2 and 3 windows in flight: the emulator holds
    each export PROCESSING for 3 polls (~4.8 s with --poll-interval 1s), as a platform would."""
    import urllib.request

    port = free_port()
    emulator = subprocess.Popen(
        [CXLAKE, "emulator", "saltedcx", "--port", str(port), "--engagements-per-day", SYNC_ENGAGEMENTS,
         "--processing-polls", "3", "--api-key", "bench-key"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/export/history", timeout=1)
            except urllib.error.HTTPError:
                break  # it answers (401 without a key)
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, SALTEDCX_API_URL=f"http://127.0.0.1:{port}/", SALTEDCX_API_KEY="bench-key")
        to = (datetime.date.fromisoformat(DATE) + datetime.timedelta(days=SYNC_DAYS)).isoformat()
        rows = []
        for parallel in (1, 2, 3):
            out_dir = tempfile.mkdtemp(prefix="bench-sync-")
            report = os.path.join(out_dir, "report.json")
            try:
                cmd = [CXLAKE, "sync", "saltedcx", "--dest", f"{out_dir}/lake", "--from", DATE, "--to", to,
                       "--poll-interval", "1s", "--parallel-windows", str(parallel), "--no-current-tables",
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


def sync_table(sync_rows):
    if not sync_rows:
        return "(not measured)"
    lines = [f"{'windows in flight':<18} {'days':>5} {'rows':>10} {'secs':>7} {'peak RSS MiB':>13} {'CPU %':>6}  speed-up"]
    base = sync_rows[0]["seconds"]
    for r in sync_rows:
        lines.append(f"{r['parallel_windows']:<18} {r['days']:>5} {r['rows']:>10} {r['seconds']:>7.1f} "
                     f"{r['peak_rss_mib']:>13.0f} {r['cpu_percent']:>6.0f}  {base / r['seconds']:.2f}x")
    return "\n".join(lines)


def write_report(rows, sync_rows=None):
    import duckdb
    import polars

    header = f"{'dataset':<11} {'tool':<7} {'CSV MB':>8} {'secs':>7} {'MB/s':>7} {'peak RSS MiB':>13} {'out MB':>8}  vs best peer"
    lines = [header]
    for r in rows:
        extra = f"{r['ratio_to_best_peer']:.2f}x {r['best_peer']}, size {r['size_vs_duckdb']:.2f}x duckdb" if "ratio_to_best_peer" in r else ""
        lines.append(f"{r['dataset']:<11} {r['tool']:<7} {r['csv_mb']:>8.0f} {r['seconds']:>7.2f} {r['mb_per_s']:>7.1f} "
                     f"{r['peak_rss_mib']:>13.0f} {r['output_mb']:>8.1f}  {extra}")
    table = "\n".join(lines)
    print(table)
    print(sync_table(sync_rows))
    versions = f"duckdb {duckdb.__version__}, polars {polars.__version__}, {subprocess.run([CXLAKE, '--version'], capture_output=True, text=True).stdout.strip()}"
    with open("BENCHMARKS.md.new", "w") as f:
        f.write(render_markdown(table, versions, rows).replace("{{SYNC_TABLE}}", sync_table(sync_rows)))
    os.replace("BENCHMARKS.md.new", "BENCHMARKS.md")


def render_markdown(table, versions, rows):
    template = open(os.path.join(os.path.dirname(__file__), "BENCHMARKS.template.md")).read()
    return (template.replace("{{MACHINE}}", machine()).replace("{{VERSIONS}}", versions)
            .replace("{{TABLE}}", table).replace("{{REPEATS}}", str(REPEATS))
            .replace("{{DATE}}", time.strftime("%Y-%m-%d")))


if __name__ == "__main__":
    if RENDER_ONLY:
        last = json.load(open(os.path.join(DATA, "last-bench.json")))
        if isinstance(last, list):  # written before the sync benchmark existed
            last = {"convert": last, "sync": None}
        write_report(last["convert"], last["sync"])
    else:
        main()
