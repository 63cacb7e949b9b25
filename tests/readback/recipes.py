"""Runs every code block of the README's "Querying the lake" section as written, and prints, as
JSON, one entry per block: its language, where it ran and whether it worked (with the error).

A block runs against a lake named `lake` in the working directory, as a reader of the README would
run it: DuckDB SQL after the lake's `views.sql` (Delta SQL with the delta extension loaded from the
pinned wheel, as offline users do), a `duckdb -init … -c "…"` line the same way in Python, Python
blocks in one namespace per kind (a notebook: Polars on Parquet, deltalake/Polars on Delta, PySpark
with a local `spark` session).

Usage: recipes.py README PARQUET_PARENT DELTA_PARENT
"""
import contextlib
import glob
import json
import os
import re
import shlex
import sys
import traceback


def blocks(readme):
    text = open(readme, encoding="utf-8").read()
    section = text.split("## Querying the lake", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def duckdb_connection(parent, delta):
    import duckdb

    os.chdir(parent)
    con = duckdb.connect()
    if delta:
        import duckdb_extension_delta

        con.sql("SET autoinstall_known_extensions = false")
        ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
        con.sql(f"LOAD '{ext}'")
    else:
        con.execute(open("lake/_cxlake/views.sql").read())
    return con


def run_sql(con, code):
    # The recipes hold no `--` or `;` inside strings: comments go, then statements split.
    text = "\n".join(line.split("--", 1)[0] for line in code.splitlines())
    for statement in text.split(";"):
        body = statement.strip()
        if body:
            # Every row computed; counted here, not turned into Python objects (whose time zones
            # would need pytz, which a DuckDB CLI user never does).
            con.execute(f"SELECT count(*) FROM ({body.rstrip(';')})").fetchone()


def main():
    readme, parquet, delta = (os.path.abspath(a) for a in sys.argv[1:4])
    results = []
    namespaces = {}
    spark = None
    quiet = contextlib.redirect_stdout(sys.stderr)  # what the recipes print is not the report
    quiet.__enter__()
    for language, code in blocks(readme):
        kind = language
        try:
            if language == "sh":
                for line in code.splitlines():
                    words = shlex.split(line, comments=True)
                    if words and words[0] == "duckdb":
                        con = duckdb_connection(parquet, False)
                        con.execute(open(words[words.index("-init") + 1]).read())
                        con.execute(f"SELECT count(*) FROM ({words[words.index('-c') + 1]})").fetchone()
            elif language == "sql":
                is_delta = "delta_scan" in code
                kind = "sql-delta" if is_delta else "sql"
                run_sql(duckdb_connection(delta if is_delta else parquet, is_delta), code)
            elif language == "python":
                if "spark." in code:
                    kind = "spark"
                    os.chdir(parquet)
                    if spark is None:
                        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
                        from readers import spark_session

                        spark = spark_session("cxlake-readme-recipes")
                    namespace = namespaces.setdefault(kind, {"spark": spark})
                elif "DeltaTable" in code or "scan_delta" in code:
                    kind = "python-delta"
                    os.chdir(delta)
                    namespace = namespaces.setdefault(kind, {})
                else:
                    kind = "python"
                    os.chdir(parquet)
                    namespace = namespaces.setdefault(kind, {})
                exec(compile(code, f"README {kind} block", "exec"), namespace)
            results.append({"kind": kind, "ok": True})
        except Exception:
            results.append({"kind": kind, "ok": False, "error": traceback.format_exc(limit=3)[-1500:], "code": code})
    if spark is not None:
        spark.stop()
    quiet.__exit__(None, None, None)
    print(json.dumps(results))
    sys.stdout.flush()
    os._exit(0)


main()
