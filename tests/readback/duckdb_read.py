"""Reads a cxlake lake with DuckDB, as a user would, and prints what it sees as JSON.

Usage: duckdb_read.py LAKE_DIR
"""
import json
import sys

import duckdb

lake = sys.argv[1]
con = duckdb.connect()
seen = {}
for dataset in ["engagement", "customer", "turn", "review", "agent"]:
    source = f"read_parquet('{lake}/saltedcx/{dataset}/*/*.parquet', hive_partitioning = true)"
    rows = con.sql(f"SELECT count(*) FROM {source}").fetchone()[0]
    dates = [str(d) for (d,) in con.sql(f"SELECT DISTINCT date FROM {source} ORDER BY date").fetchall()]
    types = {name: type_ for (name, type_, *_rest) in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    distinct = con.sql(f"SELECT count(DISTINCT pid) FROM {source}").fetchone()[0]
    seen[dataset] = {"rows": rows, "dates": dates, "types": types, "distinct_pids": distinct}
print(json.dumps(seen))
