"""Reads the Dixa tables of a lake (nested columns) and every view of its views.sql, and prints
what each reader saw as JSON: per reader and table, the row count, the column types in the
reader's own words, the number of ratings after unnesting, and the rows with an `_extra`.

Usage: nested.py LAKE_DIR
"""
import json
import os
import sys

TABLES = {
    "conversation": "dixa/conversation",
    "message": "dixa/message",
    "conversation_current": "dixa_current/conversation",
}


def path_glob(lake, name, relative):
    if name.endswith("_current"):
        return f"{lake}/{relative}/*.parquet"
    return f"{lake}/{relative}/date=*/*.parquet"


def read_duckdb(lake):
    import duckdb

    con = duckdb.connect()
    seen = {}
    for name, relative in TABLES.items():
        hive = "" if name.endswith("_current") else ", hive_partitioning = true, hive_types = {'date': DATE}"
        scan = f"read_parquet('{path_glob(lake, name, relative)}'{hive})"
        rows, extra = con.sql(f"SELECT count(*), count(_extra) FROM {scan}").fetchone()
        types = {n: t for (n, t, *_rest) in con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        entry = {"rows": rows, "extra_rows": extra, "types": types}
        if name.startswith("conversation"):
            entry["ratings"] = con.sql(f"SELECT count(*) FROM {scan}, unnest(ratings) AS t(r)").fetchone()[0]
        seen[name] = entry
    # What `duckdb -init <lake>/_cxlake/views.sql` gives: every view of every source.
    con.execute(open(f"{lake}/_cxlake/views.sql").read())
    views = [v for (v,) in con.sql("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
    seen["views"] = {v: con.sql(f"SELECT count(*) FROM {v}").fetchone()[0] for v in views}
    return seen


def read_polars(lake):
    import polars as pl

    seen = {}
    for name, relative in TABLES.items():
        lf = pl.scan_parquet(path_glob(lake, name, relative), hive_partitioning=not name.endswith("_current"))
        counts = lf.select(pl.len().alias("rows"), pl.col("_extra").is_not_null().sum().alias("extra")).collect()
        entry = {"rows": counts["rows"][0], "extra_rows": counts["extra"][0], "types": {n: str(t) for n, t in lf.collect_schema().items()}}
        if name.startswith("conversation"):
            entry["ratings"] = lf.select(pl.col("ratings").explode().drop_nulls().len()).collect().item()
        seen[name] = entry
    return seen


def read_spark(lake):
    from pyspark.sql import functions as F

    from readers import spark_session

    spark = spark_session("cxlake-nested-readback")
    seen = {}
    for name, relative in TABLES.items():
        df = spark.read.parquet(f"{lake}/{relative}")
        row = df.agg(F.count(F.lit(1)), F.count("_extra")).collect()[0]
        entry = {"rows": row[0], "extra_rows": row[1], "types": {f.name: f.dataType.simpleString() for f in df.schema.fields}}
        if name.startswith("conversation"):
            entry["ratings"] = df.select(F.explode("ratings")).count()
        seen[name] = entry
    spark.stop()
    return seen


def main():
    lake = os.path.abspath(sys.argv[1])
    print(json.dumps({"duckdb": read_duckdb(lake), "polars": read_polars(lake), "spark": read_spark(lake)}, default=str))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
