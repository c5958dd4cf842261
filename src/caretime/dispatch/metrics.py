"""Prometheus metrics for the dispatcher: queue depth by status, lateness, throughput."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Under `serve --processes N` (caretime.sharedmetrics) every process counts the same table:
# the latest count is the answer. Jobs in flight add up across the processes alive.
JOBS_BY_STATUS = Gauge(
    "caretime_jobs",
    "Jobs in the database by status (refreshed by worker heartbeats)",
    ["status"],
    multiprocess_mode="mostrecent",
)
JOB_LATENESS = Histogram(
    "caretime_job_lateness_seconds",
    "How long after its run_at a job was claimed",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
JOBS_FINISHED = Counter(
    "caretime_jobs_finished_total",
    "Job attempts finished, by kind and outcome (done, retried, failed, lease_lost)",
    ["kind", "outcome"],
)
JOBS_RUNNING_HERE = Gauge(
    "caretime_jobs_in_flight", "Jobs running in this process right now", multiprocess_mode="livesum"
)
COUNTED_STATUSES = ("queued", "running", "failed")
