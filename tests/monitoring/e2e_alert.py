#!/usr/bin/env python3
"""End-to-end alert test: an ingest run fails and an e-mail about it arrives.

Runs Prometheus and AlertManager natively (Debian's packages) with the real rules from
monitoring/rules and the real AlertManager entrypoint and template, pointed at a local SMTP
sink. Prometheus scrapes an ingest /metrics endpoint every second:

- by default a stand-in inside this script, whose failure counter goes from 0 to 1;
- with --ingest-target HOST:PORT a running wearhouse-ingest daemon, and --trigger-command a
  shell command that makes one of its runs fail (run once Prometheus has seen the counter at 0).

It first checks the target against the metrics contract (check_metric_contract.py), then
waits for the alert e-mail, reads it and checks that it names IngestRunFailed.
IngestRunFailed has `for: 0m` in the real rules, so nothing is rewritten for the test; only
scrape and evaluation intervals (1s) and AlertManager's group_wait (1s) are shortened.

    python3 tests/monitoring/e2e_alert.py [--ingest-target HOST:PORT --trigger-command CMD]

Exit status 0 when the e-mail arrived and says what it should, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_metric_contract import problems  # noqa: E402

from support import (  # noqa: E402 (after the path set-up above)
    MONITORING,
    Child,
    FakeIngestMetrics,
    SmtpSink,
    find_binary,
    free_port,
    http_get,
    wait_until,
)

ALERT = "IngestRunFailed"
RECIPIENT = "operations@wearhouse.test"
FAILURES = 'wearhouse_ingest_runs_total{job="ingest", outcome="failure"}'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ingest-target",
        help="HOST:PORT of a running ingest daemon's /metrics (default: a built-in stand-in)",
    )
    parser.add_argument(
        "--trigger-command",
        help="shell command that makes one run of --ingest-target fail (required with it)",
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds for the whole test")
    parser.add_argument("--prometheus-bin", default=None, help="default: prometheus on PATH")
    parser.add_argument(
        "--alertmanager-bin",
        default=None,
        help="default: alertmanager or prometheus-alertmanager on PATH",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if bool(args.ingest_target) != bool(args.trigger_command):
        parser.error("--ingest-target and --trigger-command go together")
    return args


def prometheus_config(target: str, alertmanager_port: int) -> dict:
    """The test's Prometheus configuration: the real rules, one ingest job, 1 s intervals."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "rules" / "*.yml")],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
            ]
        },
        "scrape_configs": [{"job_name": "ingest", "static_configs": [{"targets": [target]}]}],
    }


def query(prometheus: str, promql: str) -> list:
    body = http_get(f"{prometheus}/api/v1/query?query={urllib.parse.quote(promql)}")
    return json.loads(body)["data"]["result"] if body else []


def loaded_alerts(prometheus: str) -> set[str]:
    body = http_get(f"{prometheus}/api/v1/rules?type=alert")
    if not body:
        return set()
    groups = json.loads(body)["data"]["groups"]
    return {rule["name"] for group in groups for rule in group["rules"]}


def diagnostics(prometheus: str, alertmanager: str, children: list[Child]) -> str:
    parts = [
        "Prometheus alerts: " + (http_get(f"{prometheus}/api/v1/alerts") or b"-").decode(),
        "Prometheus targets: "
        + (http_get(f"{prometheus}/api/v1/targets?state=active") or b"-").decode()[:2000],
        "AlertManager alerts: " + (http_get(f"{alertmanager}/api/v2/alerts") or b"-").decode(),
    ]
    parts += [f"--- {child.name} log ---\n{child.tail()}" for child in children]
    return "\n".join(parts)


def run(args: argparse.Namespace, work: Path) -> None:
    deadline = time.monotonic() + args.timeout
    prometheus_bin = args.prometheus_bin or find_binary("prometheus")
    alertmanager_bin = args.alertmanager_bin or find_binary(
        "alertmanager", "prometheus-alertmanager"
    )
    children: list[Child] = []
    sink = SmtpSink()
    fake = None if args.ingest_target else FakeIngestMetrics()
    target = args.ingest_target or fake.target
    am_port, prom_port = free_port(), free_port()
    alertmanager = f"http://127.0.0.1:{am_port}"
    prometheus = f"http://127.0.0.1:{prom_port}"
    try:
        env = dict(
            os.environ,
            WEARHOUSE_ALERTMANAGER_BIN=alertmanager_bin,
            WEARHOUSE_ALERT_RENDER_DIR=str(work / "alertmanager-config"),
            WEARHOUSE_ALERT_SMTP_SMARTHOST=f"127.0.0.1:{sink.port}",
            WEARHOUSE_ALERT_EMAIL_FROM="wearhouse alerts <alerts@wearhouse.test>",
            WEARHOUSE_ALERT_EMAIL_TO=RECIPIENT,
            WEARHOUSE_ALERT_SMTP_REQUIRE_TLS="false",
            WEARHOUSE_ALERT_GROUP_WAIT="1s",
            WEARHOUSE_ALERT_GROUP_INTERVAL="5s",
        )
        for name in ("WEARHOUSE_ALERT_SMTP_USERNAME", "WEARHOUSE_ALERT_SMTP_PASSWORD",
                     "WEARHOUSE_ALERT_SMTP_PASSWORD_FILE", "WEARHOUSE_ALERT_STUDY_EMAIL_TO"):
            env.pop(name, None)
        children.append(Child(
            "alertmanager",
            [
                str(MONITORING / "alertmanager" / "entrypoint.sh"),
                f"--storage.path={work / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            work / "alertmanager.log",
            env,
        ))
        config = work / "prometheus.yml"
        config.write_text(json.dumps(prometheus_config(target, am_port), indent=2))
        children.append(Child(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            work / "prometheus.log",
        ))

        wait_until("AlertManager to be ready", lambda: http_get(f"{alertmanager}/-/ready"),
                   deadline, children)
        wait_until("Prometheus to be ready", lambda: http_get(f"{prometheus}/-/ready"),
                   deadline, children)
        exposition = http_get(f"http://{target}/metrics")
        if exposition is None:
            raise AssertionError(f"no /metrics at {target}")
        broken = problems("ingest", exposition.decode())
        if broken:
            raise AssertionError("the ingest metrics break the contract:\n" + "\n".join(broken))
        if ALERT not in loaded_alerts(prometheus):
            raise AssertionError(f"Prometheus did not load the {ALERT} rule from monitoring/rules")
        print(f"prometheus {prometheus} and alertmanager {alertmanager} are up; "
              f"scraping ingest at {target}")

        # increase() needs a sample at 0 before the failure; a series that first appears at 1
        # shows no increase, which is why the ingest daemon must start both outcomes at 0.
        before = wait_until(
            f"Prometheus to scrape {FAILURES} from {target}",
            lambda: query(prometheus, FAILURES), deadline, children,
        )
        value = float(before[0]["value"][1])
        if value != 0:
            print(f"note: the failure counter already stands at {value:g}")

        if fake:
            fake.fail_a_run()
        else:
            print(f"triggering a failing run: {args.trigger_command}")
            subprocess.run(args.trigger_command, shell=True, check=True,
                           timeout=max(1.0, deadline - time.monotonic()))

        mail = wait_for_mail(sink, deadline, children)
        check_mail(mail)
        print(f"received the {ALERT} e-mail: {mail.message['Subject']}")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{diagnostics(prometheus, alertmanager, children)}")
    finally:
        for child in reversed(children):
            child.stop()
        sink.close()
        if fake:
            fake.close()


def wait_for_mail(sink: SmtpSink, deadline: float, children: list[Child]):
    """The first e-mail about the alert; other alerts' e-mails are reported and skipped."""
    while True:
        mail = wait_until("the alert e-mail", lambda: _poll(sink), deadline, children)
        if ALERT in str(mail.message["Subject"]):
            return mail
        print(f"skipping an e-mail about something else: {mail.message['Subject']}")


def _poll(sink: SmtpSink):
    try:
        return sink.received.get_nowait()
    except queue.Empty:
        return None


def check_mail(mail) -> None:
    text = mail.text()
    expected = [
        ALERT,
        "An ingest run failed",
        "severity=critical",
        "[FIRING",
    ]
    missing = [phrase for phrase in expected if phrase not in text]
    if missing:
        raise AssertionError(f"the alert e-mail lacks {missing}:\n{text}")
    if RECIPIENT not in str(mail.message["To"]) or not any(RECIPIENT in r for r in mail.rcpt_to):
        raise AssertionError(f"the alert e-mail went to {mail.rcpt_to}, not {RECIPIENT}")


def main() -> int:
    args = parse_args()
    # Turn SIGTERM (a CI timeout) into an exception so the finally blocks stop the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="wearhouse-e2e-alert-"))
    try:
        run(args, work)
    except AssertionError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
