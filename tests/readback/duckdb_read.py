"""Reads a cxlake lake with DuckDB, as a user would, and prints what it sees as JSON.

Usage: duckdb_read.py LAKE_DIR [SOURCE DATASET...]   (default: saltedcx's five datasets)
"""
import json
import sys

import duckdb

lake = sys.argv[1]
source = sys.argv[2] if len(sys.argv) > 2 else "saltedcx"
datasets = sys.argv[3:] or ["engagement", "customer", "turn", "review", "agent"]
con = duckdb.connect()
seen = {}
for dataset in datasets:
    scan = f"read_parquet('{lake}/{source}/{dataset}/*/*.parquet', hive_partitioning = true)"
    rows = con.sql(f"SELECT count(*) FROM {scan}").fetchone()[0]
    dates = [str(d) for (d,) in con.sql(f"SELECT DISTINCT date FROM {scan} ORDER BY date").fetchall()]
    types = {name: type_ for (name, type_, *_rest) in con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    seen[dataset] = {"rows": rows, "dates": dates, "types": types}
    if "pid" in types:
        seen[dataset]["distinct_pids"] = con.sql(f"SELECT count(DISTINCT pid) FROM {scan}").fetchone()[0]
print(json.dumps(seen))
