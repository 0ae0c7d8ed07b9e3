"""``python -m pipeline`` is the ``up-jobs`` command."""

from pipeline.cli import entry

raise SystemExit(entry())
