"""Prints, as JSON, the descriptions and PII flags a reader finds in what cxlake wrote: pyarrow's
view of a Parquet file's Arrow schema (field and schema metadata) and python deltalake's view of
a Delta table (column metadata, table description).

Usage: described.py PARQUET_FILE DELTA_TABLE_DIR
"""
import json
import os
import sys

import pyarrow.parquet as pq
from deltalake import DeltaTable


def text(value):
    return value.decode() if isinstance(value, bytes) else value


schema = pq.read_schema(sys.argv[1])
parquet = {
    "description": text((schema.metadata or {}).get(b"description")),
    "columns": {
        field.name: {text(k): text(v) for k, v in (field.metadata or {}).items()} for field in schema
    },
}
table = DeltaTable(sys.argv[2])
delta = {
    "description": table.metadata().description,
    "columns": {field.name: dict(field.metadata) for field in table.schema().fields},
}
print(json.dumps({"parquet": parquet, "delta": delta}))
sys.stdout.flush()
os._exit(0)
