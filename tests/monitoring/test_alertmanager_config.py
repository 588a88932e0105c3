"""Tests of the AlertManager configuration rendering (render-config.sh) and entrypoint.

Run: python3 -m unittest discover -s tests/monitoring -t tests/monitoring
Needs amtool and alertmanager (monitoring/install-deps.sh).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from support import MONITORING, Child, find_binary, free_port, http_get, wait_until

TEMPLATE = MONITORING / "alertmanager" / "alertmanager.yml.tmpl"
RENDER = MONITORING / "alertmanager" / "render-config.sh"
ENTRYPOINT = MONITORING / "alertmanager" / "entrypoint.sh"

SETTINGS = {
    "WEARHOUSE_ALERT_SMTP_SMARTHOST": "smtp.example.org:587",
    "WEARHOUSE_ALERT_EMAIL_FROM": "wearhouse alerts <alerts@example.org>",
    "WEARHOUSE_ALERT_EMAIL_TO": "ops@example.org, oncall@example.org",
    "WEARHOUSE_ALERT_TEMPLATES_DIR": str(MONITORING / "alertmanager" / "templates"),
}


def clean_env(**settings: str) -> dict:
    """The process environment without any WEARHOUSE_ALERT_ setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEARHOUSE_ALERT")}
    env.update(settings)
    return env


def quoted_value(config: str, key: str) -> str:
    """The double-quoted YAML value of `key` (YAML and JSON escape `\\` and `"` alike)."""
    for line in config.splitlines():
        if line.strip().startswith(f"{key}:"):
            return json.loads(line.split(":", 1)[1].strip())
    raise AssertionError(f"{key} not in the rendered configuration")


class RenderConfigTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wearhouse-am-test-"))
        self.addCleanup(subprocess.run, ["rm", "-rf", str(self.dir)], check=False)
        self.out = self.dir / "alertmanager.yml"

    def render(self, **settings: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(RENDER), str(TEMPLATE), str(self.out)],
            env=clean_env(**settings),
            capture_output=True,
            text=True,
        )

    def test_settings_from_the_environment_make_a_configuration_amtool_accepts(self) -> None:
        result = self.render(**SETTINGS)
        self.assertEqual(result.returncode, 0, result.stderr)
        check = subprocess.run(["amtool", "check-config", str(self.out)], capture_output=True,
                               text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        config = self.out.read_text()
        self.assertEqual(quoted_value(config, "smtp_smarthost"), "smtp.example.org:587")
        self.assertEqual(quoted_value(config, "smtp_from"), SETTINGS["WEARHOUSE_ALERT_EMAIL_FROM"])
        self.assertIn("smtp_require_tls: true", config)
        self.assertEqual(quoted_value(config, "group_wait"), "30s")

    def test_study_alerts_go_to_the_operations_recipients_unless_a_study_address_is_set(self):
        self.assertEqual(self.render(**SETTINGS).returncode, 0)
        recipients = [json.loads(line.split(":", 1)[1]) for line in
                      self.out.read_text().splitlines() if line.strip().startswith("- to:")]
        self.assertEqual(recipients, [SETTINGS["WEARHOUSE_ALERT_EMAIL_TO"]] * 3)

        self.assertEqual(
            self.render(**SETTINGS, WEARHOUSE_ALERT_STUDY_EMAIL_TO="study@example.org").returncode,
            0,
        )
        recipients = [json.loads(line.split(":", 1)[1]) for line in
                      self.out.read_text().splitlines() if line.strip().startswith("- to:")]
        self.assertEqual(recipients[-1], "study@example.org")
        self.assertEqual(recipients[:2], [SETTINGS["WEARHOUSE_ALERT_EMAIL_TO"]] * 2)

    def test_quotes_and_backslashes_in_a_value_reach_alertmanager_unchanged(self) -> None:
        sender = '"Ops \\ Alerts" <alerts@example.org>'
        result = self.render(**{**SETTINGS, "WEARHOUSE_ALERT_EMAIL_FROM": sender})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(quoted_value(self.out.read_text(), "smtp_from"), sender)
        check = subprocess.run(["amtool", "check-config", str(self.out)], capture_output=True)
        self.assertEqual(check.returncode, 0, check.stdout)

    def test_a_missing_required_setting_is_an_error_that_names_it(self) -> None:
        settings = dict(SETTINGS)
        del settings["WEARHOUSE_ALERT_EMAIL_TO"]
        result = self.render(**settings)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("WEARHOUSE_ALERT_EMAIL_TO is required", result.stderr)
        self.assertFalse(self.out.exists(), "a failed render must leave no configuration")

    def test_a_value_with_a_line_break_is_rejected(self) -> None:
        result = self.render(**{**SETTINGS, "WEARHOUSE_ALERT_EMAIL_TO": "a@example.org\nroute:"})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("line break", result.stderr)

    def test_a_user_name_without_a_password_is_rejected(self) -> None:
        result = self.render(**SETTINGS, WEARHOUSE_ALERT_SMTP_USERNAME="alerts")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no password", result.stderr)

    def test_require_tls_must_be_true_or_false(self) -> None:
        result = self.render(**SETTINGS, WEARHOUSE_ALERT_SMTP_REQUIRE_TLS="yes")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("WEARHOUSE_ALERT_SMTP_REQUIRE_TLS", result.stderr)


class EntrypointTests(unittest.TestCase):
    def test_the_password_reaches_alertmanager_through_a_private_file_only(self) -> None:
        work = Path(tempfile.mkdtemp(prefix="wearhouse-am-entry-"))
        self.addCleanup(subprocess.run, ["rm", "-rf", str(work)], check=False)
        secret = "s3cret-Pa55word"
        port = free_port()
        env = clean_env(
            **SETTINGS,
            WEARHOUSE_ALERT_SMTP_USERNAME="alerts@example.org",
            WEARHOUSE_ALERT_SMTP_PASSWORD=secret,
            WEARHOUSE_ALERT_RENDER_DIR=str(work / "config"),
            WEARHOUSE_ALERTMANAGER_BIN=find_binary("alertmanager", "prometheus-alertmanager"),
        )
        child = Child(
            "alertmanager",
            [str(ENTRYPOINT), f"--storage.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            work / "alertmanager.log",
            env,
        )
        self.addCleanup(child.stop)
        status = wait_until(
            "AlertManager to serve its status",
            lambda: http_get(f"http://127.0.0.1:{port}/api/v2/status"),
            time.monotonic() + 30,
            [child],
        )

        password_file = work / "config" / "smtp_password"
        self.assertEqual(password_file.read_text(), secret)
        self.assertEqual(stat.S_IMODE(password_file.stat().st_mode), 0o600)
        loaded = json.loads(status)["config"]["original"]
        self.assertIn(f"smtp_auth_password_file: {password_file}", loaded)
        self.assertIn("smtp_auth_username: alerts@example.org", loaded)
        self.assertNotIn(secret, loaded)
        self.assertNotIn(secret, (work / "config" / "alertmanager.yml").read_text())
        environ = Path(f"/proc/{child.process.pid}/environ").read_bytes()
        self.assertNotIn(secret.encode(), environ)


if __name__ == "__main__":
    unittest.main()
