"""Tests of check_metric_contract.py, the check run against live services' /metrics."""

from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

from check_metric_contract import problems
from support import FakeIngestMetrics, http_get

# What a complete api exposition looks like in OpenMetrics, as prometheus-client writes it.
API_EXPOSITION = """\
# TYPE wearhouse_http_requests counter
wearhouse_http_requests_total{route="/data",method="GET",status="200"} 3
# TYPE wearhouse_http_request_duration_seconds histogram
wearhouse_http_request_duration_seconds_sum{route="/data",method="GET",status="200"} 0.2
wearhouse_http_request_duration_seconds_count{route="/data",method="GET",status="200"} 3
wearhouse_http_request_duration_seconds_bucket{le="1.0",route="/data",method="GET",status="200"} 3
wearhouse_http_request_duration_seconds_bucket{le="+Inf",route="/data",method="GET",status="200"} 3
# TYPE wearhouse_db_pool_connections gauge
wearhouse_db_pool_connections{state="idle"} 4
wearhouse_db_pool_connections{state="in_use"} 1
# TYPE wearhouse_db_pool_max_connections gauge
wearhouse_db_pool_max_connections 5
# TYPE wearhouse_study_participants_without_data gauge
wearhouse_study_participants_without_data{days="3"} 0
# EOF
"""


class MetricContractTests(unittest.TestCase):
    def test_an_api_exporting_every_queried_metric_meets_the_contract(self) -> None:
        self.assertEqual(problems("api", API_EXPOSITION), [])

    def test_a_queried_metric_the_service_does_not_export_is_reported(self) -> None:
        exposition = "\n".join(line for line in API_EXPOSITION.splitlines()
                               if "db_pool_max" not in line)
        self.assertEqual(
            problems("api", exposition),
            ["api: wearhouse_db_pool_max_connections is queried by the alert rules but not "
             "exported"],
        )

    def test_the_stand_in_ingest_of_the_end_to_end_test_meets_the_contract(self) -> None:
        fake = FakeIngestMetrics()
        self.addCleanup(fake.close)
        exposition = http_get(f"http://{fake.target}/metrics").decode()
        self.assertEqual(problems("ingest", exposition), [])

    def test_a_failure_counter_that_appears_only_after_a_failure_is_reported(self) -> None:
        exposition = (
            'wearhouse_ingest_runs_total{outcome="success"} 1\n'
            "wearhouse_ingest_last_success_timestamp_seconds 1700000000\n"
            "wearhouse_ingest_participants_needing_reconsent 0\n"
            'wearhouse_ingest_participants_needing_reconsent_longer{days="7"} 0\n'
            "wearhouse_database_up 1\n"
            'wearhouse_database_relation_size_bytes{relation="raw_data"} 8192\n'
        )
        self.assertEqual(
            problems("ingest", exposition),
            ['ingest: wearhouse_ingest_runs_total{outcome="failure"} must be exported from '
             "start (at 0)"],
        )

    def test_database_job_metrics_are_required_only_on_timescaledb(self) -> None:
        base = (
            'wearhouse_ingest_runs_total{outcome="success"} 0\n'
            'wearhouse_ingest_runs_total{outcome="failure"} 0\n'
            "wearhouse_ingest_last_success_timestamp_seconds 0\n"
            "wearhouse_ingest_participants_needing_reconsent 0\n"
            'wearhouse_ingest_participants_needing_reconsent_longer{days="7"} 0\n'
            "wearhouse_database_up 1\n"
            'wearhouse_database_relation_size_bytes{relation="raw_data"} 8192\n'
        )
        plain = base + 'wearhouse_database_info{backend="postgres",run_db_jobs="none"} 1\n'
        self.assertEqual(problems("ingest", plain), [])
        timescale = base + 'wearhouse_database_info{backend="timescaledb",run_db_jobs="auto"} 1\n'
        missing = problems("ingest", timescale)
        self.assertIn(
            "ingest: wearhouse_database_job_consecutive_failures is queried by the alert rules "
            "but not exported",
            missing,
        )
        self.assertIn(
            "ingest: wearhouse_database_chunks_awaiting_compression is queried by the alert "
            "rules but not exported",
            missing,
        )

    def test_metrics_are_taken_from_the_rules_as_they_are(self) -> None:
        rules = Path(tempfile.mkdtemp(prefix="wearhouse-rules-"))
        self.addCleanup(shutil.rmtree, rules)
        (rules / "extra.yml").write_text(
            "groups: [{name: x, rules: [{alert: X, expr: wearhouse_impute_new_gauge > 1}]}]\n"
        )
        self.assertEqual(
            problems("impute", 'wearhouse_impute_jobs_total{outcome="succeeded"} 0\n'
                               'wearhouse_impute_jobs_total{outcome="failed"} 0\n', rules),
            ["impute: wearhouse_impute_new_gauge is queried by the alert rules but not exported"],
        )


if __name__ == "__main__":
    unittest.main()
