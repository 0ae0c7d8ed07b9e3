"""up-jobs: Telestream UP workflow job records into DuckDB (or any dlt destination), with duration analytics."""

__version__ = "0.1.0"
