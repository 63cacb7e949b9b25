"""Runs real dbt (dbt-core with dbt-duckdb) over a cxlake lake through the sources file
`cxlake dbt sources` wrote, and prints, as JSON, what each command said.

Usage: dbt_project.py PROJECT_DIR COMMAND...   (COMMAND: freshness, run, test)

PROJECT_DIR holds models/cxlake_sources.yml; this script writes the rest of a minimal project
around it — dbt_project.yml, profiles.yml (an in-project DuckDB file), and a model selecting from
every source table — and runs each COMMAND with the `dbt` command line, reading what it did
from its artifacts.
"""
import json
import os
import subprocess
import sys

import yaml

os.environ["DO_NOT_TRACK"] = "1"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"

project = sys.argv[1]
with open(os.path.join(project, "models", "cxlake_sources.yml")) as f:
    sources = yaml.safe_load(f)["sources"]

with open(os.path.join(project, "dbt_project.yml"), "w") as f:
    f.write("name: cxlake_check\nversion: '1.0'\nconfig-version: 2\nprofile: cxlake\nmodel-paths: ['models']\n")
with open(os.path.join(project, "profiles.yml"), "w") as f:
    path = os.path.join(project, "check.duckdb")
    f.write(f"cxlake:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: '{path}'\n      threads: 1\n")

selects = []
for source in sources:
    for table in source["tables"]:
        name = f"{source['name']}.{table['name']}"
        selects.append(
            f"select '{name}' as source_table, count(*) as row_count, max(_cxlake_loaded_at) as loaded_at "
            f"from {{{{ source('{source['name']}', '{table['name']}') }}}}"
        )
with open(os.path.join(project, "models", "every_source.sql"), "w") as f:
    f.write("{{ config(materialized='table') }}\n" + "\nunion all\n".join(selects) + "\n")

dbt = os.path.join(os.path.dirname(sys.executable), "dbt")
common = ["--project-dir", project, "--profiles-dir", project, "--no-use-colors"]
results = {"tables": len(selects)}
for command in sys.argv[2:]:
    args = {"freshness": ["source", "freshness"], "run": ["run"], "test": ["test"]}[command]
    done = subprocess.run([dbt] + args + common, capture_output=True, text=True)
    # dbt's own record of what it did: target/sources.json (freshness), run_results.json.
    artifact = "sources.json" if command == "freshness" else "run_results.json"
    with open(os.path.join(project, "target", artifact)) as f:
        artifact = json.load(f)
    results[command] = {
        "success": done.returncode == 0,
        "output": done.stdout[-3000:] if done.returncode != 0 else "",
        "results": [{"node": r["unique_id"], "status": r["status"]} for r in artifact["results"]],
    }
if "run" in results:
    import duckdb

    con = duckdb.connect(os.path.join(project, "check.duckdb"))
    results["rows"] = {t: n for t, n, _ in con.execute("select * from every_source").fetchall()}
    con.close()
print(json.dumps(results))
sys.stdout.flush()
os._exit(0)
