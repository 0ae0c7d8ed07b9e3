"""``python -m pipeline`` is the ``up-jobs`` command."""

from pipeline.cli import main

raise SystemExit(main())
