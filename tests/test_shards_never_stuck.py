"""Shards into Postgres never get stuck on a field's type or a refused row (issue: warehouse path)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from pipeline.emulator.generator import format_timestamp
from pipeline.job_ids import Shard
from tests.cli_runner import up_jobs
from tests.conftest import _POSTGRES, SECRET_KEY, start_emulator

pytestmark = pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")
TYPED = {0: lambda index: index, 1: lambda index: f"p{index}", 2: lambda index: index + 0.5}


def _args(emulator, *extra: str) -> list[str]:
    return ["run", "--destination", "postgres", "--concurrency", "4", "--jobs-file", str(emulator.jobs_file), *extra]


def _command(emulator, *extra: str) -> list[str]:
    """A shard's own process: shards at once are separate processes, as their workers are."""
    return [sys.executable, "-m", "pipeline", *_args(emulator, *extra)]


def _retype(emulator, shift: int) -> dict[str, object]:
    """Give every job an added field whose type depends on its shard (and on ``shift``)."""
    expected = {}
    now = format_timestamp(datetime.now(timezone.utc))
    for index, ref in enumerate(emulator.store.refs()):
        shard = next(i for i in range(3) if Shard(i, 3).owns(ref))
        value = TYPED[(shard + shift) % 3](index)
        emulator.store.put(ref, {**emulator.store.get(ref), "priority": value, "updated_at": now})
        expected[ref.job_id] = value
    return expected


def test_shards_that_see_an_added_field_with_different_types_all_load(tmp_path, postgres_database):
    for emulator in start_emulator(tmp_path, jobs=60, seed=41, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        for shift, extra in ((0, ()), (1, ("--refresh",))):  # then every shard sees another type
            expected = _retype(emulator, shift)
            workers = [subprocess.Popen(_command(emulator, "--shard", f"{i}/3", *extra), env=env, cwd=tmp_path,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
            outputs = [worker.communicate(timeout=300) for worker in workers]
            assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
            stored = dict(emulator.query("select id, extra_fields from telestream_up.workflow_jobs"))
            assert {job: json.loads(text)["priority"] for job, text in stored.items()} == expected


def test_a_shard_whose_row_is_refused_records_it_and_is_not_blocked(tmp_path, postgres_database):
    for emulator in start_emulator(tmp_path, jobs=40, seed=43, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        args = _args(emulator, "--shard", "0/1", "--refresh")
        assert up_jobs(*args, env=env, cwd=tmp_path, timeout=300).returncode == 0
        import psycopg2

        with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
            cursor.execute("alter table telestream_up.workflow_jobs add constraint no_poison check (name <> 'poison')")
        refs = emulator.store.refs()
        poison, good = refs[0], refs[1:]
        now = format_timestamp(datetime.now(timezone.utc))
        emulator.store.put(poison, {**emulator.store.get(poison), "name": "poison", "updated_at": now})
        for ref in good:
            emulator.store.put(ref, {**emulator.store.get(ref), "progress": 66.0, "updated_at": now})
        runs = [up_jobs(*args, env=env, cwd=tmp_path, timeout=300) for _ in range(2)]
        assert [run.returncode for run in runs] == [4, 4], [run.stderr for run in runs]
        assert "set aside" in runs[0].stdout
        progress = dict(emulator.query("select id, progress from telestream_up.workflow_jobs"))
        assert all(progress[ref.job_id] == 66.0 for ref in good)
        assert emulator.query("select job_id, error_kind from telestream_up.open_fetch_errors") == [(poison.job_id, "load_failed")]
