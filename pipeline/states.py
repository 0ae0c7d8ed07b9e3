"""UP job states, defined once: the pipeline, the emulator and the tests import these.

UP documents six workflow job states; three are final (a job in one never changes again, so the
pipeline stops requesting it). SQL views cannot import Python: ``tests/test_job_fields.py``
checks that every ``is_terminal`` a view defines lists exactly :data:`TERMINAL_STATES`.
"""

from __future__ import annotations

KNOWN_STATES = frozenset({"created", "in-process", "retry", "succeeded", "failed", "stopped"})
TERMINAL_STATES = frozenset({"succeeded", "failed", "stopped"})
