#!/usr/bin/env python3
"""Checks that running services export what the alert rules query.

    python3 tests/monitoring/check_metric_contract.py \\
        --ingest http://127.0.0.1:9102/metrics --api http://127.0.0.1:8000/metrics \\
        --impute http://127.0.0.1:9103/metrics

Every `wearhouse_*` metric named in monitoring/rules must appear in the /metrics of the service
that owns it (by name: wearhouse_ingest_* ingest, wearhouse_impute_* impute, wearhouse_backup_*
the backup service, through node-exporter's textfile collector; the rest api), and
the counters whose first increase the rules must see must have every outcome series from the
start, at a value, before anything has happened. The database's background-job metrics
(wearhouse_database_job_*, wearhouse_database_chunks_awaiting_compression) exist only where
TimescaleDB is installed, so they are required only when the ingest reports that backend
(wearhouse_database_info{backend="timescaledb"}). Run it against freshly started services.
Services not given are skipped. Exit status 1 lists what is missing.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.request
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "monitoring" / "rules"

# Series that must exist from process start (see "Metrics contract" in monitoring/README.md).
INITIALISED = {
    "ingest": [("wearhouse_ingest_runs_total", {"outcome": o}) for o in ("success", "failure")],
    "impute": [("wearhouse_impute_jobs_total", {"outcome": o}) for o in ("succeeded", "failed")],
    "api": [],
    "backup": [],
}

# Series the ingest exports only on TimescaleDB (plain PostgreSQL has no background jobs).
TIMESCALEDB_ONLY = re.compile(r"^wearhouse_database_(job_|chunks_awaiting_compression)")

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def owner(metric: str) -> str:
    if metric.startswith("wearhouse_database_"):
        return "ingest"  # the ingest daemon watches the database's upkeep
    for service in ("ingest", "impute", "backup"):
        if metric.startswith(f"wearhouse_{service}_"):
            return service
    return "api"


def referenced_metrics(rules_dir: Path = RULES) -> dict[str, set[str]]:
    """Metric names the rules query, by owning service."""
    names: dict[str, set[str]] = {"ingest": set(), "impute": set(), "api": set(), "backup": set()}
    for path in sorted(rules_dir.glob("*.yml")):
        for name in re.findall(r"\bwearhouse_[a-z0-9_]+", path.read_text()):
            names[owner(name)].add(name)
    return names


def parse_exposition(text: str) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every sample in Prometheus text or OpenMetrics exposition."""
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            samples.append((match.group(1), dict(LABEL.findall(match.group(2) or ""))))
    return samples


def problems(service: str, exposition: str, rules_dir: Path = RULES) -> list[str]:
    """What `service`'s exposition lacks, as sentences; empty when it meets the contract."""
    samples = parse_exposition(exposition)
    names = {name for name, _ in samples}
    timescaledb = any(
        n == "wearhouse_database_info" and labels.get("backend") == "timescaledb"
        for n, labels in samples
    )
    found = []
    for metric in sorted(referenced_metrics(rules_dir)[service]):
        if TIMESCALEDB_ONLY.match(metric) and not timescaledb:
            continue
        if metric not in names:
            found.append(f"{service}: {metric} is queried by the alert rules but not exported")
    for metric, labels in INITIALISED[service]:
        if not any(n == metric and labels.items() <= l.items() for n, l in samples):
            wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
            found.append(f"{service}: {metric}{{{wanted}}} must be exported from start (at 0)")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for service in ("ingest", "api", "impute", "backup"):
        parser.add_argument(f"--{service}", metavar="URL", help=f"{service}'s /metrics URL")
    parser.add_argument(
        "--api-token-file",
        metavar="FILE",
        help="the API's metrics scrape token (WEARHOUSE_METRICS_TOKEN_FILE), sent as a bearer token",
    )
    args = parser.parse_args()
    found = []
    for service in ("ingest", "api", "impute", "backup"):
        url = getattr(args, service)
        if url:
            request = urllib.request.Request(url)
            if service == "api" and args.api_token_file:
                with open(args.api_token_file, encoding="utf-8") as f:
                    request.add_header("Authorization", f"Bearer {f.read().strip()}")
            with urllib.request.urlopen(request, timeout=10) as response:
                found += problems(service, response.read().decode())
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
