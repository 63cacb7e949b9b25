"""Reads a Parquet history table whose windows were written under two declarations, the way the
README's Polars recipe does (the newest file's schema, missing columns inserted as null), and
prints its row count and one column's non-null count as JSON.

Usage: polars_union.py TABLE_DIR COLUMN
"""
import glob
import json
import os
import sys

import polars as pl

table, column = sys.argv[1], sys.argv[2]
newest = sorted(glob.glob(f"{table}/date=*/*.parquet"))[-1]
frame = pl.scan_parquet(f"{table}/**/*.parquet", hive_partitioning=True,
                        schema=pl.read_parquet_schema(newest), missing_columns="insert").collect()
print(json.dumps({"rows": frame.height, "non_null": frame.height - frame[column].null_count()}))
sys.stdout.flush()
os._exit(0)
