"""Which DuckDB releases can read a published analysis file: each opens it read-only and counts
the rows of every table and view.

Each release's ``duckdb`` Python package is installed once with pip into a cache folder (one
folder per version, put on PYTHONPATH of a child process), so no release is mixed with the
project's own. A new view can shut out old readers even when the storage format is old enough
(a view's parse tree is stored in the file), so rerun this after adding or changing views.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RELEASES = ("0.10.3", "1.0.0", "1.1.3", "1.2.2", "1.3.2", "1.4.4")
"""The oldest release that reads the default v1.0.0 format (0.10.2 cannot), then the last of each minor."""
CACHE = Path.home() / ".cache" / "up-jobs-duckdb-releases"

CHECK = r"""
import sys, duckdb
try:
    connection = duckdb.connect(sys.argv[1], read_only=True)
    objects = connection.execute(
        "select schema_name, table_name from duckdb_tables() "
        "union all select schema_name, view_name from duckdb_views() where not internal"
    ).fetchall()
except Exception as error:
    print(f"cannot open: {str(error).splitlines()[0][:160]}")
    raise SystemExit(1)
failed = []
for schema, name in objects:
    try:
        connection.execute(f'select count(*) from "{schema}"."{name}"').fetchall()
    except Exception as error:
        failed.append(f"{name}: {str(error).splitlines()[0][:120]}")
print(f"{len(objects)} tables and views, " + ("all answer" if not failed else "FAILED " + "; ".join(failed)))
raise SystemExit(1 if failed else 0)
"""


def _install(version: str) -> Path:
    target = CACHE / version
    if not (target / "duckdb").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        f"duckdb=={version}"], check=True)
    return target


def check(db: Path, releases: tuple[str, ...] = RELEASES) -> bool:
    """Print one line per release (and the installed package and `duckdb` CLI); True if all read it."""
    readers: list[tuple[str, list[str], dict[str, str]]] = [
        (f"duckdb {version} (Python)", [sys.executable, "-c", CHECK, str(db)], {"PYTHONPATH": str(_install(version))})
        for version in releases
    ]
    readers.append(("installed duckdb (Python)", [sys.executable, "-c", CHECK, str(db)], {}))
    cli = Path(sys.executable).with_name("duckdb")  # from `pip install duckdb-cli`
    if cli.exists():
        version = subprocess.run([str(cli), "--version"], capture_output=True, text=True).stdout.split(" ")[0]
        readers.append((f"duckdb CLI {version}", [str(cli), "-readonly", str(db), _count_everything(db)], {}))
    ok = True
    for label, command, env in readers:
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
        lines = (result.stdout.strip() or result.stderr.strip()).splitlines() or ["(no output)"]
        text = "every table and view answers" if label.startswith("duckdb CLI") and result.returncode == 0 else lines[-1]
        print(f"  {label:<28} {text}")
        ok = ok and result.returncode == 0
    return ok


def _count_everything(db: Path) -> str:
    """One SQL statement counting the rows of every table and view (for the CLI)."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as connection:
        objects = connection.execute(
            "select schema_name, table_name from duckdb_tables() "
            "union all select schema_name, view_name from duckdb_views() where not internal"
        ).fetchall()
    return " union all ".join(f'select count(*) from "{schema}"."{name}"' for schema, name in objects)
