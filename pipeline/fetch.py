"""Fetch many jobs with bounded concurrency, yielding results as they complete.

A thread pool of ``concurrency`` workers shares one :class:`UpClient` (a keep-alive session
per worker). At most ``2 × concurrency`` requests are submitted ahead, so memory stays flat
however long the job list is, and results stream to dlt in completion order.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import Iterable, Iterator

from pipeline.http import FetchResult, UpClient
from pipeline.job_ids import JobRef


def fetch_concurrently(client: UpClient, refs: Iterable[JobRef], concurrency: int) -> Iterator[FetchResult]:
    """Yield one FetchResult per ref; an AuthRejected from any worker stops all of them."""
    pending_refs = iter(refs)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="up-fetch")
    in_flight: set[Future[FetchResult]] = set()
    try:
        in_flight.update(pool.submit(client.fetch, ref) for ref in islice(pending_refs, 2 * concurrency))
        while in_flight:
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
                for ref in islice(pending_refs, 1):
                    in_flight.add(pool.submit(client.fetch, ref))
    except BaseException:  # AuthRejected, or the consumer closed us (GeneratorExit, Ctrl-C)
        client.abort()  # wakes workers blocked on sockets, so shutdown below does not wait on them
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
