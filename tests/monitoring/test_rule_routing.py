"""Every alert rule is labelled and annotated so that AlertManager routes it and the e-mail says
something: Prometheus loads the real rules and reports each rule's labels, and amtool resolves
the receiver of each against the rendered AlertManager configuration.

Run: python3 -m unittest discover -s tests/monitoring -t tests/monitoring
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from support import MONITORING, Child, find_binary, free_port, http_get, wait_until
from test_alertmanager_config import RENDER, SETTINGS, TEMPLATE, clean_env


def expected_receiver(labels: dict) -> str:
    """The routing policy monitoring/README.md states."""
    if labels.get("audience") == "study":
        return "study"
    if labels.get("kind") == "event":
        return "operations-events"
    return "operations"


class RuleRoutingTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        work = Path(tempfile.mkdtemp(prefix="wearhouse-rule-routing-"))
        cls.addClassCleanup(subprocess.run, ["rm", "-rf", str(work)], check=False)
        cls.alertmanager_config = work / "alertmanager.yml"
        subprocess.run([str(RENDER), str(TEMPLATE), str(cls.alertmanager_config)],
                       env=clean_env(**SETTINGS), check=True)

        config = work / "prometheus.yml"
        config.write_text(json.dumps({"rule_files": [str(MONITORING / "rules" / "*.yml")]}))
        port = free_port()
        child = Child(
            "prometheus",
            [find_binary("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            work / "prometheus.log",
        )
        cls.addClassCleanup(child.stop)
        body = wait_until(
            "Prometheus to report its rules",
            lambda: http_get(f"http://127.0.0.1:{port}/api/v1/rules?type=alert"),
            time.monotonic() + 30,
            [child],
        )
        cls.groups = json.loads(body)["data"]["groups"]
        cls.rules = [rule for group in cls.groups for rule in group["rules"]]

    def test_prometheus_loads_every_rule_file(self) -> None:
        files = {path.name for path in (MONITORING / "rules").glob("*.yml")}
        self.assertEqual({Path(group["file"]).name for group in self.groups}, files)

    def test_every_alert_has_a_severity_an_audience_a_summary_and_a_description(self) -> None:
        for rule in self.rules:
            with self.subTest(alert=rule["name"]):
                self.assertIn(rule["labels"].get("severity"), {"critical", "warning"})
                self.assertIn(rule["labels"].get("audience"), {"operations", "study"})
                self.assertTrue(rule["annotations"].get("summary"))
                self.assertTrue(rule["annotations"].get("description"))

    def test_every_alert_reaches_the_receiver_its_labels_call_for(self) -> None:
        for rule in self.rules:
            labels = {"alertname": rule["name"], **rule["labels"]}
            with self.subTest(alert=rule["name"]):
                result = subprocess.run(
                    ["amtool", "config", "routes", "test",
                     f"--config.file={self.alertmanager_config}",
                     *(f"{key}={value}" for key, value in sorted(labels.items()))],
                    capture_output=True, text=True,
                )
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(result.stdout.strip(), expected_receiver(labels))


if __name__ == "__main__":
    unittest.main()
