"""Runs one query in DuckDB after `<lake>/_cxlake/views.sql`, and prints the rows as JSON.

Usage: sql.py LAKE_DIR QUERY
"""
import json
import os
import sys

import duckdb

lake, query = os.path.abspath(sys.argv[1]), sys.argv[2]
con = duckdb.connect()
con.execute(open(f"{lake}/_cxlake/views.sql").read())
print(json.dumps(con.sql(query).fetchall(), default=str))
sys.stdout.flush()
os._exit(0)
