"""Reads a cxlake lake the way each consumer recipe in the README does, and prints what it saw
as JSON: for every table (history `<dataset>` and current `<dataset>_current`), the row count,
the distinct dates, the distinct pids and the column types in that reader's own words.

Usage: readers.py READER LAKE_DIR
READER: duckdb | duckdb_views | duckdb_delta | spark | polars | polars_delta | deltalake
"""
import glob
import json
import os
import sys

DATASETS = ["engagement", "customer", "turn", "review", "agent"]


def tables(lake):
    """(name, history-or-current directory) for every table the lake holds."""
    for dataset in DATASETS:
        for name, path in [(dataset, f"{lake}/saltedcx/{dataset}"), (f"{dataset}_current", f"{lake}/saltedcx_current/{dataset}")]:
            if os.path.isdir(path):
                yield name, path


def summary(rows, dates, pids, types):
    return {"rows": rows, "dates": sorted(str(d) for d in dates), "distinct_pids": pids, "types": types}


def read_duckdb(lake, delta):
    import duckdb

    con = duckdb.connect()
    if delta:
        # Offline: the extension ships in the duckdb-extension-delta wheel (same version as duckdb).
        import duckdb_extension_delta

        con.sql("SET autoinstall_known_extensions = false")
        ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
        con.sql(f"LOAD '{ext}'")
    seen = {}
    for name, path in tables(lake):
        if delta:
            scan = f"delta_scan('{path}')"
        elif name.endswith("_current"):
            scan = f"read_parquet('{path}/*.parquet')"
        else:
            scan = f"read_parquet('{path}/date=*/*.parquet', hive_partitioning = true, hive_types = {{'date': DATE}})"
        seen[name] = duckdb_summary(con, scan)
    return seen


def duckdb_summary(con, relation):
    """Rows, dates, distinct pids and column types of a table function call or a view."""
    rows, pids = con.sql(f"SELECT count(*), count(DISTINCT pid) FROM {relation}").fetchone()
    dates = [d for (d,) in con.sql(f"SELECT DISTINCT date FROM {relation}").fetchall()]
    types = {n: t for (n, t, *_rest) in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    return summary(rows, dates, pids, types)


def read_duckdb_views(lake):
    """What `duckdb -init <lake>/_cxlake/views.sql` gives: every saltedcx view, by table name
    (for events, `<dataset>_current` is a view that deduplicates the history)."""
    import duckdb

    con = duckdb.connect()
    con.execute(open(f"{lake}/_cxlake/views.sql").read())
    views = [v for (v,) in con.sql("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'saltedcx_%'").fetchall()]
    return {v.removeprefix("saltedcx_"): duckdb_summary(con, v) for v in views}


def spark_session(name):
    """A local Spark on loopback only, timestamps shown in UTC."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName(name)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_spark(lake):
    from pyspark.sql import functions as F

    spark = spark_session("cxlake-readback")
    seen = {}
    for name, path in tables(lake):
        df = spark.read.parquet(path)  # partition discovery turns date=… into a date column
        row = df.agg(F.count(F.lit(1)), F.countDistinct("pid")).collect()[0]
        dates = [r[0] for r in df.select("date").distinct().collect()]
        seen[name] = summary(row[0], dates, row[1], {f.name: f.dataType.simpleString() for f in df.schema.fields})
    spark.stop()
    return seen


def read_polars(lake, delta):
    import polars as pl

    seen = {}
    for name, path in tables(lake):
        if delta:
            lf = pl.scan_delta(path)
        elif name.endswith("_current"):
            lf = pl.scan_parquet(f"{path}/*.parquet")
        else:
            lf = pl.scan_parquet(f"{path}/**/*.parquet", hive_partitioning=True)
        counts = lf.select(pl.len().alias("rows"), pl.col("pid").n_unique().alias("pids")).collect()
        dates = lf.select(pl.col("date").unique()).collect()["date"].to_list()
        types = {n: str(t) for n, t in lf.collect_schema().items()}
        seen[name] = summary(counts["rows"][0], dates, counts["pids"][0], types)
    return seen


def read_deltalake(lake):
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    seen = {}
    for name, path in tables(lake):
        table = DeltaTable(path).to_pyarrow_table()
        dates = pc.unique(table["date"]).to_pylist()
        pids = len(pc.unique(table["pid"]))
        seen[name] = summary(table.num_rows, dates, pids, {f.name: str(f.type) for f in table.schema})
        seen[name]["version"] = DeltaTable(path).version()
    return seen


def main():
    reader, lake = sys.argv[1], os.path.abspath(sys.argv[2])
    readers = {
        "duckdb": lambda: read_duckdb(lake, delta=False),
        "duckdb_views": lambda: read_duckdb_views(lake),
        "duckdb_delta": lambda: read_duckdb(lake, delta=True),
        "spark": lambda: read_spark(lake),
        "polars": lambda: read_polars(lake, delta=False),
        "polars_delta": lambda: read_polars(lake, delta=True),
        "deltalake": lambda: read_deltalake(lake),
    }
    print(json.dumps(readers[reader](), default=str))
    sys.stdout.flush()
    # python deltalake can abort at interpreter exit after correct output (TOOLING.md).
    os._exit(0)


if __name__ == "__main__":
    main()
