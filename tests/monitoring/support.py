"""Test helpers for the monitoring stack: an SMTP sink, a stand-in ingest /metrics endpoint,
free ports, and child processes that are always stopped.

Only Python 3.11 standard library; shared by e2e_alert.py and the unit tests next to it.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import os
import queue
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers we cannot hand port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(*names: str) -> str:
    """The first of `names` found on PATH (Debian installs AlertManager as prometheus-alertmanager)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(
        f"none of {', '.join(names)} found on PATH; run monitoring/install-deps.sh"
    )


@dataclass
class Mail:
    """One message the sink accepted."""

    mail_from: str
    rcpt_to: list[str]
    message: email.message.EmailMessage

    def text(self) -> str:
        """Subject and every text part, decoded, for searching."""
        parts = [str(self.message["Subject"] or "")]
        for part in self.message.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                parts.append(part.get_content())
        return "\n".join(parts)


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 for AlertManager's Go SMTP client (no TLS, no AUTH)."""

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        sink: SmtpSink = self.server.sink  # type: ignore[attr-defined]
        mail_from, rcpt_to = "", []
        self._reply("220 wearhouse-test-sink ESMTP")
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb == "EHLO":
                self._reply("250-wearhouse-test-sink")
                self._reply("250-8BITMIME")
                self._reply("250 SIZE 10485760")
            elif verb == "HELO":
                self._reply("250 wearhouse-test-sink")
            elif verb == "MAIL":
                mail_from, rcpt_to = line.split(":", 1)[1].strip(), []
                self._reply("250 ok")
            elif verb == "RCPT":
                rcpt_to.append(line.split(":", 1)[1].strip())
                self._reply("250 ok")
            elif verb == "DATA":
                self._reply("354 end data with <CR><LF>.<CR><LF>")
                body = bytearray()
                while True:
                    chunk = self.rfile.readline()
                    if not chunk or chunk in (b".\r\n", b".\n"):
                        break
                    # Undo dot-stuffing (RFC 5321 section 4.5.2).
                    body += chunk[1:] if chunk.startswith(b"..") else chunk
                message = email.message_from_bytes(bytes(body), policy=email.policy.default)
                sink.received.put(Mail(mail_from, rcpt_to, message))
                self._reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 ok")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 command not implemented")


class SmtpSink:
    """A local SMTP server on a free port that keeps every message in a queue."""

    def __init__(self) -> None:
        self.received: queue.Queue[Mail] = queue.Queue()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
        self._server.daemon_threads = True
        self._server.sink = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeIngestMetrics:
    """Stands in for the ingest daemon's /metrics until a test points at the real one.

    Both outcome series exist from the start at 0 (the ingest metrics contract), so a failure
    is an increase Prometheus can see.
    """

    def __init__(self) -> None:
        self.failures = 0
        self.scrapes = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                fake.scrapes += 1
                body = (
                    "# HELP wearhouse_ingest_runs_total Ingest runs by outcome.\n"
                    "# TYPE wearhouse_ingest_runs_total counter\n"
                    'wearhouse_ingest_runs_total{outcome="success"} 0\n'
                    f'wearhouse_ingest_runs_total{{outcome="failure"}} {fake.failures}\n'
                    "# HELP wearhouse_ingest_last_success_timestamp_seconds Last success.\n"
                    "# TYPE wearhouse_ingest_last_success_timestamp_seconds gauge\n"
                    "wearhouse_ingest_last_success_timestamp_seconds 0\n"
                    "# HELP wearhouse_ingest_participants_needing_reconsent Re-consent needed.\n"
                    "# TYPE wearhouse_ingest_participants_needing_reconsent gauge\n"
                    "wearhouse_ingest_participants_needing_reconsent 0\n"
                    "# HELP wearhouse_ingest_participants_needing_reconsent_longer Waiting.\n"
                    "# TYPE wearhouse_ingest_participants_needing_reconsent_longer gauge\n"
                    'wearhouse_ingest_participants_needing_reconsent_longer{days="7"} 0\n'
                    "# HELP wearhouse_database_up Database readable.\n"
                    "# TYPE wearhouse_database_up gauge\n"
                    "wearhouse_database_up 1\n"
                    "# HELP wearhouse_database_relation_size_bytes Relation sizes.\n"
                    "# TYPE wearhouse_database_relation_size_bytes gauge\n"
                    'wearhouse_database_relation_size_bytes{relation="raw_data"} 8192\n'
                    "# HELP wearhouse_database_info Backend.\n"
                    "# TYPE wearhouse_database_info gauge\n"
                    'wearhouse_database_info{backend="postgres",run_db_jobs="none"} 1\n'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.target = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def fail_a_run(self) -> None:
        self.failures += 1

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Child:
    """A child process whose output goes to a log file; stop() ends it and its group."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict | None = None) -> None:
        self.name, self.log = name, log
        self._log_file = open(log, "wb")
        self.process = subprocess.Popen(
            args,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()


def http_get(url: str, timeout: float = 2.0) -> bytes | None:
    """The body of a 200 answer, or None while the server is not (yet) answering."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_until(what: str, check, deadline: float, children: list[Child], interval: float = 0.5):
    """Polls `check` until it returns a true value, a child dies, or the deadline passes."""
    while time.monotonic() < deadline:
        for child in children:
            if child.process.poll() is not None:
                raise AssertionError(
                    f"{child.name} exited with {child.process.returncode} while waiting for "
                    f"{what}; its log ends:\n{child.tail()}"
                )
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
