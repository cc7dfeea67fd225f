"""``landing_drop_sensor``: start a run of a feed's partition for every new or changed drop in landing/.

What is loaded already is read from the instance, the way the nightly planner and ``placelink refresh`` read it
(:func:`~orchestration.defs.ops.planning.load_history`): a drop whose partition has a successful load newer than
the file starts no run, whoever launched that load (this sensor, a backfill, ``placelink refresh``/``demo``). So
starting the daemon on a home the demo filled launches nothing; the sensor's cursor is only a cache of what it has
looked at, never the record of what is done.

The run key is ``<file>:<sha256>``, so the same content is never requested twice (Dagster skips a run key
it has seen) while its run is queued or running, and the cursor remembers each file's size/mtime/sha256 so
unchanged files are not even re-hashed. A changed file (newer than the partition's last load) gets a new run key
and reloads its whole partition, which is idempotent. Each run is tagged with the file and hash that triggered it.

Which files are drops is the landing rule of :mod:`orchestration.lib.landing` (the one ingest and the nightly
planner use). Every file it rejects (misnamed, a link, a special file, outside any feed folder) starts no run and
is logged as a warning with its reason and fix when it first appears or changes; the feed's next load records
it in ``ops.load_log``/``ops.quarantine``. A link is never followed and no rejected file is opened or hashed.
"""


import json

import dagster as dg

from orchestration.defs.ops.planning import load_history
from orchestration.defs.partitions import monthly_partitions
from orchestration.defs.resources import PlacelinkSettings
from orchestration.lib.contracts import Feed
from orchestration.lib.feeds import sha256_of
from orchestration.lib.landing import contract_extensions, scan_landing


def build_landing_sensor(feeds: list[Feed], job,
                         name: str = "landing_drop_sensor") -> dg.SensorDefinition:
    @dg.sensor(name=name, job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Starts a feed partition run for each new partner drop in landing/ "
                           "(run key = file + sha256, so no file is loaded twice).")
    def _sensor(context: dg.SensorEvaluationContext, placelink_settings: PlacelinkSettings) -> dg.SensorResult:
        settings = placelink_settings.get()  # the home the code location is bound to, not os.environ
        seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
        valid = set(monthly_partitions.get_partition_keys())
        requests, skipped = [], []
        by_key = {(f.partner, f.id): f for f in feeds}
        loaded_at: dict[str, dict[str, float]] = {}  # feed -> partition -> its newest successful load (lazily)

        def loaded(feed: Feed, partition: str) -> float:
            if feed.name not in loaded_at:
                history = load_history(context.instance, dg.AssetKey(["raw", feed.name]))
                loaded_at[feed.name] = {pk: max(times) for pk, times in history.items()}
            return loaded_at[feed.name].get(partition, float("-inf"))

        for item in scan_landing(settings.landing, contract_extensions(feeds)):
            rel = f"landing/{item.rel}"
            if item.reason:
                # a rejected file: never opened or hashed; reported when it appears or changes
                mark = ["rejected", item.modified, item.reason_code]
                if seen.get(rel) != mark:
                    seen[rel] = mark
                    skipped.append(f"{rel}: rejected, {item.reason} (fix: {item.fix})")
                continue
            feed, path, partition = by_key[(item.partner, item.feed)], item.path, item.partition
            stat = path.stat(follow_symlinks=False)
            known = seen.get(rel)
            if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
                continue
            if partition in valid and stat.st_mtime <= loaded(feed, partition):
                # loaded after it landed (the same test as lib.ops.drops.pending_partitions): nothing to do, and
                # no hash needed; a later change of the file (new mtime) brings it back here
                seen[rel] = [stat.st_size, stat.st_mtime_ns, None]
                continue
            digest = sha256_of(path)
            seen[rel] = [stat.st_size, stat.st_mtime_ns, digest]
            if known and known[2] == digest:
                continue  # touched, same content: already requested
            if partition not in valid:
                skipped.append(f"ignored drop {rel} (partition {partition} outside the monthly partitions)")
                continue
            requests.append(dg.RunRequest(
                run_key=f"{rel}:{digest}",
                partition_key=partition,
                asset_selection=[dg.AssetKey(["raw", feed.name])],
                tags={"placelink/source_file": rel[-63:].replace("/", "."), "placelink/sha256": digest[:16]},
            ))
        for item in skipped:
            context.log.warning(item)
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return _sensor
