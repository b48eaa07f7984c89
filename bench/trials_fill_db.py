"""Fills a trialplane database with standalone trials for bench/trials_bench.py, fast.

Runs what TrialService.CreateTrial runs (trial_from_proto, the same admit
check, create_trial on the storage open_storage(path) returns) without the
gRPC round trip, many at a time so the storage engine commits them in groups.
The rows are the ones CreateTrial would write: names "<prefix>-c<client>-<n>"
and tags ["bench", "client-<k>"].

Usage: .venv/bin/python bench/trials_fill_db.py --db PATH --count N [--prefix bench]
Prints the number of trials in the database when done, counted with Storage.list_trials.
"""

from __future__ import annotations

import argparse
import asyncio

from trialplane.server.api.trial_service import trial_from_proto
from trialplane.server.domain import listing, validation
from trialplane.server.storage.factory import open_storage
from trialplane.v1 import trial_pb2

BATCH = 256


async def count_trials(storage) -> int:
    """Every trial, paged through list_trials by id."""
    flt = listing.TrialFilter()
    page = listing.make_page("", listing.MAX_PAGE_SIZE, listing.Order(), vars(flt))
    total = 0
    while True:
        trials, page.after = await storage.list_trials(flt, page)
        total += len(trials)
        if page.after is None:
            return total


async def fill(db: str, count: int, prefix: str, clients: int = 8) -> int:
    storage = open_storage(db)
    await storage.open()
    try:
        protos = [
            trial_pb2.Trial(study_id=0, name=f"{prefix}-c{n % clients}-{n // clients:05d}",
                            tags=["bench", f"client-{n % clients}"])
            for n in range(count)
        ]
        for start in range(0, count, BATCH):
            calls = []
            for p in protos[start:start + BATCH]:
                trial = trial_from_proto(p)
                calls.append(storage.create_trial(trial, None, lambda study, t=trial: validation.validate_new_trial(t, study)))
            await asyncio.gather(*calls)
        return await count_trials(storage)
    finally:
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", default="bench")
    args = parser.parse_args()
    print(asyncio.run(fill(args.db, args.count, args.prefix)), flush=True)


if __name__ == "__main__":
    main()
