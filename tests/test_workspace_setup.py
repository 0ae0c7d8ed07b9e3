"""Set-up a run skips when it can: the working copy a clean run left is not opened to check it."""

from __future__ import annotations

import os

from pipeline.workspace import Workspace


def test_the_working_copy_is_trusted_unopened_only_as_the_last_publish_left_it(emulator):
    emulator.run()
    workspace = Workspace.for_duckdb(emulator.db)
    assert workspace.working_copy_as_published()

    wal = workspace.work_db.with_name("work.duckdb.wal")
    wal.write_bytes(b"")  # a run died with uncheckpointed writes
    assert not workspace.working_copy_as_published()
    wal.unlink()
    assert workspace.working_copy_as_published()

    stat = workspace.work_db.stat()
    os.utime(workspace.work_db, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # written since, same size
    assert not workspace.working_copy_as_published()

    emulator.run()  # checked by opening it, loaded, published: recorded again
    assert workspace.working_copy_as_published()
