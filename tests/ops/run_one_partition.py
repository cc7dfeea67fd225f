"""Helper process for the concurrency test: run one month of the fixture's police feed in this process."""

import os
import sys
import time

import dagster as dg

from tests.ops.fixture_location import build_fixture_defs

if __name__ == "__main__":
    dagster_home, partition = sys.argv[1], sys.argv[2]
    instance = dg.DagsterInstance.from_config(dagster_home)
    job = build_fixture_defs().resolve_job_def("ops_partitioned_refresh_job")
    if os.environ.get("PLACELINK_TEST_READY_LOG"):  # when this run is about to ask for its pool slot
        with open(os.environ["PLACELINK_TEST_READY_LOG"], "a") as fh:
            fh.write(f"{partition} {time.time()}\n")
    result = job.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False,
                                    asset_selection=[dg.AssetKey(["raw", "police__street_crimes"])])
    print("RUN", result.run_id, "SUCCESS" if result.success else "FAILURE")
    sys.exit(0 if result.success else 1)
