"""Reads one Delta table with python `deltalake` (its latest version) and prints, as JSON, its
columns, its row count and each column's non-null count: what a reader sees of a table whose
files were written under several declarations.

Usage: delta_table.py TABLE_DIR
"""
import json
import os
import sys

from deltalake import DeltaTable

table = DeltaTable(sys.argv[1]).to_pyarrow_table()
print(json.dumps({
    "columns": table.column_names,
    "rows": table.num_rows,
    "non_null": {name: table.num_rows - table.column(name).null_count for name in table.column_names},
}))
sys.stdout.flush()
os._exit(0)
