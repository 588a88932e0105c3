"""Static checks of the deployment files: docker-compose.yml, .env.example, the Dockerfiles and
the nginx configuration. They run without Docker; `docker compose config` (or Debian's
docker-compose 1.29) and `nginx -t` are used where installed and the test says when not.

    python3 -m unittest discover -s tests/stack -t tests/stack -v
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "web.Dockerfile",
               ROOT / "docker" / "db.Dockerfile"]
NGINX_TEMPLATE = ROOT / "docker" / "nginx" / "default.conf.template"
RENDER = ROOT / "scripts" / "stack.d" / "render-template.sh"
TRANSPORT = ROOT / "docker" / "nginx" / "transport.sh"
SELF_SIGNED = ROOT / "docker" / "tls-self-signed.sh"
INIT_SECRETS = ROOT / "docker" / "init-secrets.sh"
# The UIs served behind the dashboard's sign-in, and the API check each one asks.
UIS = {"grafana": "grafana", "prometheus": "operations", "alertmanager": "operations"}

# The services DESIGN.md names.
REQUIRED_SERVICES = {
    "db", "migrate", "ingest", "api", "impute", "web",
    "prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor", "backup",
}
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.I)


def load_compose():
    with COMPOSE.open() as f:
        return yaml.safe_load(f)


def is_one_shot(service):
    return str(service.get("restart", "no")) == "no"


def env_example_names(commented=False):
    """Settings .env.example sets; with `commented`, also those it shows commented out (the
    ones compose passes on only when set)."""
    names = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if commented:
            line = re.sub(r"^#\s*(?=[A-Z][A-Z0-9_]*=)", "", line)
        if line and not line.startswith("#"):
            names.append(line.split("=", 1)[0])
    return names


def pass_through_names(compose):
    """Environment entries without a value: compose passes them on from .env only when set."""
    return {
        key
        for service in compose["services"].values()
        for key, value in (service.get("environment") or {}).items()
        if value is None
    }


def compose_cli():
    """The compose command available here, or None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


class ComposeFile(unittest.TestCase):
    def setUp(self):
        self.compose = load_compose()
        self.services = self.compose["services"]

    def test_every_service_of_the_design_is_defined(self):
        missing = REQUIRED_SERVICES - set(self.services)
        self.assertFalse(missing, f"services missing from docker-compose.yml: {sorted(missing)}")

    def test_every_image_is_pinned_to_a_version(self):
        for name, service in self.services.items():
            image = service.get("image")
            self.assertTrue(image, f"{name}: no image name")
            if "build" in service:
                # Built here: the tag names the local build, from .env.
                self.assertRegex(image, r":\$\{WEARHOUSE_IMAGE_TAG:-[^}]+\}$", name)
                continue
            repo, _, tag = image.rpartition(":")
            self.assertTrue(repo and "/" not in tag, f"{name}: {image} has no tag")
            self.assertNotIn(tag, {"latest", "stable", "main", "edge"}, f"{name}: {image}")
            self.assertRegex(tag, r"\d+\.\d+", f"{name}: {image} is not an exact version")

    def test_the_database_is_timescaledb_community_with_its_data_in_a_named_volume(self):
        db = self.services["db"]
        # Built from TimescaleDB's image, with pgBackRest added (docker/db.Dockerfile).
        self.assertEqual(db["build"]["dockerfile"], "docker/db.Dockerfile")
        self.assertRegex((ROOT / "docker" / "db.Dockerfile").read_text(),
                         r"(?m)^FROM timescale/timescaledb:\S+-pg15$")
        self.assertIn("timescaledb.license=timescale", db.get("command", []))
        self.assertEqual(db["environment"]["TIMESCALEDB_TELEMETRY"], "off")
        data = [v for v in db["volumes"] if v.endswith(":/var/lib/postgresql/data")]
        self.assertEqual(len(data), 1)
        self.assertIn(data[0].split(":")[0], self.compose["volumes"])

    def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy(self):
        for name, service in self.services.items():
            if is_one_shot(service):
                self.assertNotIn("healthcheck", service, f"{name} is one-shot")
                continue
            self.assertIn(service["restart"], {"unless-stopped", "always", "on-failure"}, name)
            check = service.get("healthcheck", {})
            self.assertTrue(check.get("test"), f"{name} has no healthcheck")
            self.assertNotEqual(check["test"], ["NONE"], name)

    def test_dependencies_wait_for_completion_or_health(self):
        for name, service in self.services.items():
            deps = service.get("depends_on", {})
            self.assertIsInstance(deps, dict, f"{name}: depends_on needs conditions")
            for dep, spec in deps.items():
                self.assertIn(dep, self.services, f"{name} depends on unknown {dep}")
                wanted = (
                    "service_completed_successfully"
                    if is_one_shot(self.services[dep])
                    else "service_healthy"
                )
                self.assertEqual(spec.get("condition"), wanted, f"{name} → {dep}")

    def test_every_app_service_waits_for_the_migrations(self):
        def waits_for_migrate(name, seen=()):
            deps = self.services[name].get("depends_on", {})
            return "migrate" in deps or any(
                waits_for_migrate(d, seen + (name,)) for d in deps if d not in seen
            )

        for name, service in self.services.items():
            command = service.get("command", [])
            if "build" in service and name not in {"db", "migrate", "secrets-init", "web"}:
                self.assertTrue(waits_for_migrate(name), f"{name} does not wait for migrate")
            if "build" in service and command[:1] in (["wearhouse-api"], ["wearhouse-ingest"]):
                self.assertIn("DATABASE_URL", service["environment"], name)

    def test_named_volumes_are_declared_and_bind_mounts_exist(self):
        declared = set(self.compose.get("volumes") or {})
        for name, service in self.services.items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    self.assertTrue((ROOT / source).exists(), f"{name}: {source} is missing")
                elif not source.startswith("/"):
                    self.assertIn(source, declared, f"{name}: volume {source} is not declared")

    def test_no_secret_value_is_written_in_the_file(self):
        for name, service in self.services.items():
            env = service.get("environment", {})
            self.assertIsInstance(env, dict, name)
            for key, value in env.items():
                if SECRET_KEY.search(key) and not key.endswith("_FILE") and value is not None:
                    self.assertRegex(str(value), r"^\$\{[A-Z0-9_]+:?-?\}$", f"{name}: {key}")
        self.assertNotRegex(COMPOSE.read_text(), r"postgres(ql)?://[^@/\s]*:[^@/\s]*@")

    def test_every_setting_compose_reads_is_documented_in_env_example(self):
        used = set(VAR.findall(COMPOSE.read_text())) | pass_through_names(self.compose)
        documented = env_example_names(commented=True)
        self.assertEqual(len(documented), len(set(documented)), "a setting is listed twice")
        self.assertFalse(used - set(documented), f"undocumented: {sorted(used - set(documented))}")
        # A pass-through setting set to "" in .env would reach the program as an empty value.
        self.assertFalse(pass_through_names(self.compose) & set(env_example_names()))

    def test_wearhouse_programs_get_no_empty_default(self):
        # clap takes an empty environment variable as a value ("" is not a port, a URL, ...),
        # so optional settings are passed on only when set instead of defaulting to "".
        for name, service in self.services.items():
            if "build" not in service or service.get("entrypoint"):
                continue  # not a wearhouse binary (the shell entrypoints treat "" as unset)
            for key, value in (service.get("environment") or {}).items():
                self.assertNotRegex(str(value), r"\$\{[A-Z0-9_]+:?-\}", f"{name}: {key}")

    def test_every_setting_in_env_example_is_read_somewhere(self):
        readers = COMPOSE.read_text() + (ROOT / "scripts" / "stack").read_text()
        readers += "".join(p.read_text() for p in (ROOT / "docker").glob("*.sh"))
        for name in env_example_names(commented=True):
            if name == "COMPOSE_PROJECT_NAME":
                continue  # read by compose itself
            self.assertIn(name, readers, f"{name} is in .env.example but nothing reads it")

    def test_published_ports_bind_to_the_configured_address(self):
        for name, service in self.services.items():
            for port in service.get("ports", []):
                self.assertTrue(
                    str(port).startswith("${WEARHOUSE_BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
                )

    def test_only_the_web_server_publishes_ports(self):
        # Grafana, Prometheus and AlertManager are reached through nginx's sign-in check only.
        for name, service in self.services.items():
            if name != "web":
                self.assertNotIn("ports", service, f"{name} publishes a port of its own")
        web = [str(p) for p in self.services["web"]["ports"]]
        self.assertTrue(any(p.endswith(":80") for p in web), web)
        self.assertTrue(any(p.endswith(":443") for p in web), web)

    def test_grafana_takes_the_user_from_the_web_server_only(self):
        env = self.services["grafana"]["environment"]
        self.assertEqual(env["GF_AUTH_PROXY_ENABLED"], "true")
        self.assertEqual(env["GF_AUTH_PROXY_HEADER_NAME"], "X-Wearhouse-User")
        self.assertEqual(env["GF_AUTH_PROXY_HEADER_PROPERTY"], "email")
        self.assertEqual(env["GF_AUTH_PROXY_HEADERS"], "Role:X-Wearhouse-Grafana-Role")
        self.assertEqual(env["GF_AUTH_PROXY_AUTO_SIGN_UP"], "true")
        self.assertEqual(env["GF_AUTH_DISABLE_LOGIN_FORM"], "true")
        self.assertEqual(env["GF_USERS_ALLOW_SIGN_UP"], "false")
        self.assertEqual(env["GF_SERVER_SERVE_FROM_SUB_PATH"], "true")
        self.assertRegex(env["GF_SERVER_ROOT_URL"], r"/grafana/\}?$")
        # Only the web server's fixed address may send the identity headers.
        web_address = self.services["web"]["networks"]["ui"]["ipv4_address"]
        self.assertEqual(env["GF_AUTH_PROXY_WHITELIST"], web_address)
        # nginx reaches Grafana by its name on that network, so the request comes from there.
        self.assertEqual(self.services["grafana"]["networks"]["ui"]["aliases"], ["grafana-ui"])
        self.assertEqual(self.services["web"]["environment"]["WEARHOUSE_GRAFANA_UPSTREAM"],
                         "grafana-ui:3000")
        subnet = self.compose["networks"]["ui"]["ipam"]["config"][0]["subnet"]
        self.assertTrue(subnet.startswith("${WEARHOUSE_UI_SUBNET:-"), subnet)

    def test_the_api_takes_the_client_address_from_the_web_server_only(self):
        # X-Real-IP is believed only from the trusted proxies: the web server's fixed address,
        # from which nginx reaches the API by its name on the ui network.
        web_address = self.services["web"]["networks"]["ui"]["ipv4_address"]
        api = self.services["api"]
        self.assertEqual(api["environment"]["WEARHOUSE_TRUSTED_PROXIES"], web_address)
        self.assertEqual(api["networks"]["ui"]["aliases"], ["api-ui"])
        self.assertIn("default", api["networks"])
        self.assertEqual(self.services["web"]["environment"]["WEARHOUSE_API_UPSTREAM"],
                         "api-ui:8000")

    def test_prometheus_and_alertmanager_serve_under_the_prefix_nginx_proxies(self):
        for name, prefix, port in (("prometheus", "/prometheus", 9090),
                                   ("alertmanager", "/alertmanager", 9093)):
            service = self.services[name]
            self.assertIn(f"--web.route-prefix={prefix}", service["command"], name)
            external = [a for a in service["command"] if a.startswith("--web.external-url=")]
            self.assertTrue(external and external[0].endswith(f"{prefix}/}}"), external)
            self.assertIn(f"http://localhost:{port}{prefix}/-/", " ".join(service["healthcheck"]["test"]))
        config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
        self.assertEqual(config["alerting"]["alertmanagers"][0]["path_prefix"], "/alertmanager")
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        self.assertEqual(jobs["prometheus"]["metrics_path"], "/prometheus/metrics")
        self.assertEqual(jobs["alertmanager"]["metrics_path"], "/alertmanager/metrics")
        sources = yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yml").read_text())
        urls = [d["url"] for d in sources["datasources"] if d["type"] == "prometheus"]
        self.assertEqual(urls, ["http://prometheus:9090/prometheus"])

    def test_secrets_init_runs_as_root_to_hand_each_secret_to_its_reader(self):
        self.assertEqual(str(self.services["secrets-init"].get("user")), "0:0")
        self.assertIn("tls:/run/wearhouse-tls:ro", self.services["web"]["volumes"])
        self.assertNotIn("secrets:/run/wearhouse-secrets:ro", self.services["web"].get("volumes", []))

    def test_every_service_rotates_its_logs(self):
        for name, service in self.services.items():
            logging = service.get("logging", {})
            self.assertEqual(logging.get("driver"), "json-file", name)
            self.assertIn("max-size", logging.get("options", {}), name)

    def test_compose_accepts_the_file_with_and_without_an_env_file(self):
        cli = compose_cli()
        if cli is None:
            self.skipTest("neither `docker compose` nor docker-compose is installed")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WEARHOUSE_", "POSTGRES_"))}
        for extra in ([], ["--env-file", str(ENV_EXAMPLE)]):
            with tempfile.TemporaryDirectory() as empty:
                # --project-directory elsewhere: a developer's own .env must not mask a problem.
                result = subprocess.run(
                    cli + ["-f", str(COMPOSE), "--project-directory", empty, *extra, "config"],
                    capture_output=True, text=True, env=env,
                )
            self.assertEqual(result.returncode, 0, f"{' '.join(cli)} config {extra}: {result.stderr}")
            rendered = yaml.safe_load(result.stdout)
            self.assertEqual(set(rendered["services"]), set(self.services))


class Backups(unittest.TestCase):
    """The database archives its WAL to the backup repository, the backup service takes base
    backups there on a schedule, and its status reaches Prometheus through node-exporter."""

    def setUp(self):
        self.compose = load_compose()
        self.services = self.compose["services"]
        self.db = self.services["db"]
        self.backup = self.services["backup"]

    def settings(self, service):
        """The `-c name=value` settings of a service's postgres command line."""
        command = service["command"]
        return dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "-c")

    def mounts(self, service):
        """{volume or source: (target, options)} of a service."""
        result = {}
        for volume in service.get("volumes", []):
            source, target, *options = volume.split(":")
            result[source] = (target, options)
        return result

    def test_the_database_archives_every_wal_segment_with_pgbackrest(self):
        settings = self.settings(self.db)
        self.assertEqual(settings["archive_mode"], "on")
        self.assertRegex(settings["archive_command"], r"^pgbackrest .*archive-push %p$")
        self.assertRegex(settings["archive_timeout"], r"^\$\{WEARHOUSE_DB_ARCHIVE_TIMEOUT:-\d+\}$")
        self.assertIn("pgbackrest", (ROOT / "docker" / "db.Dockerfile").read_text())

    def test_database_and_backup_service_share_the_repository_and_its_settings(self):
        # archive-push (in the database) and backup must write the same repository: the same
        # pgBackRest settings, S3 ones included, and the same volume at the repository path.
        db_env, backup_env = self.db["environment"], self.backup["environment"]
        for key, value in db_env.items():
            if key.startswith("PGBACKREST_"):
                self.assertEqual(backup_env.get(key, "missing"), value, key)
        repo = db_env["PGBACKREST_REPO1_PATH"]
        self.assertEqual(self.mounts(self.db)["backup-repo"][0], repo)
        self.assertEqual(self.mounts(self.backup)["backup-repo"][0], repo)
        self.assertIn("backup-repo", self.compose["volumes"])
        # pgBackRest connects through the Unix socket, and reads the data folder read-only.
        socket = backup_env["WEARHOUSE_BACKUP_PGHOST"]
        self.assertEqual(self.mounts(self.db)["db-socket"][0], socket)
        self.assertEqual(self.mounts(self.backup)["db-socket"][0], socket)
        target, options = self.mounts(self.backup)["db-data"]
        self.assertEqual(options, ["ro"])
        self.assertEqual(target, self.mounts(self.db)["db-data"][0])
        self.assertEqual(backup_env["WEARHOUSE_BACKUP_PGDATA"], db_env["PGDATA"])
        self.assertEqual(db_env["PGBACKREST_PG1_PATH"], db_env["PGDATA"])

    def test_the_backup_service_runs_the_schedule_from_the_database_image(self):
        self.assertEqual(self.backup["image"], self.db["image"])
        self.assertEqual(self.backup["entrypoint"], ["wearhouse-backup"])
        self.assertEqual(self.backup["command"], ["schedule"])
        self.assertIn("COPY scripts/backup /usr/local/bin/wearhouse-backup",
                      (ROOT / "docker" / "db.Dockerfile").read_text())
        env = self.backup["environment"]
        for setting in ("RETENTION_FULL", "INTERVAL_HOURS", "TYPE"):
            self.assertRegex(env[f"WEARHOUSE_BACKUP_{setting}"],
                             rf"^\$\{{WEARHOUSE_BACKUP_{setting}:-\w+\}}$")
            self.assertIn(f"WEARHOUSE_BACKUP_{setting}", (ROOT / "scripts" / "backup").read_text())

    def test_the_backup_status_file_is_served_by_node_exporter_and_scraped(self):
        metrics = Path(self.backup["environment"]["WEARHOUSE_BACKUP_METRICS_FILE"])
        self.assertEqual(metrics.suffix, ".prom")  # the textfile collector reads *.prom only
        self.assertEqual(self.mounts(self.backup)["backup-metrics"][0], str(metrics.parent))
        target, options = self.mounts(self.services["node-exporter"])["backup-metrics"]
        self.assertEqual(options, ["ro"])
        self.assertIn(f"--collector.textfile.directory={target}",
                      self.services["node-exporter"]["command"])
        self.assertIn(str(metrics.parent), " ".join(self.backup["healthcheck"]["test"]))
        config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
        targets = [t for job in config["scrape_configs"] for c in job.get("static_configs", [])
                   for t in c["targets"]]
        self.assertIn("node-exporter:9100", targets)
        rules = (ROOT / "monitoring" / "rules" / "backup.yml").read_text()
        self.assertIn("wearhouse_backup_last_success_timestamp_seconds", rules)
        self.assertIn("wearhouse_backup_wal_last_failed_timestamp_seconds", rules)


class Dockerfiles(unittest.TestCase):
    def instructions(self, path):
        """(instruction, arguments) pairs with continuation lines joined and comments dropped."""
        text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", path.read_text())
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                word, _, rest = line.partition(" ")
                yield word.upper(), rest.strip()

    def test_base_images_are_pinned_to_versions(self):
        for path in DOCKERFILES:
            stages = set()
            for word, rest in self.instructions(path):
                if word != "FROM":
                    continue
                parts = rest.split()
                image = parts[0]
                if image not in stages:
                    self.assertRegex(image, r"^[\w./-]+:[\w.-]*\d+\.\d+[\w.-]*$", f"{path.name}: {image}")
                    self.assertNotIn(":latest", image)
                if len(parts) == 3 and parts[1].upper() == "AS":
                    stages.add(parts[2])

    def test_no_file_is_fetched_with_add_and_copied_sources_exist(self):
        for path in DOCKERFILES:
            for word, rest in self.instructions(path):
                self.assertNotEqual(word, "ADD", f"{path.name}: use COPY (ADD fetches and unpacks)")
                if word == "COPY" and "--from=" not in rest:
                    for source in rest.split()[:-1]:
                        self.assertTrue((ROOT / source).exists(), f"{path.name}: {source}")

    def test_apt_installs_nothing_recommended_and_leaves_no_lists(self):
        for path in DOCKERFILES:
            for word, rest in self.instructions(path):
                if word == "RUN" and "apt-get install" in rest:
                    self.assertIn("--no-install-recommends", rest, path.name)
                    self.assertIn("rm -rf /var/lib/apt/lists/*", rest, path.name)

    def test_the_app_image_builds_offline_with_migrations_and_runs_as_a_user(self):
        path = ROOT / "docker" / "Dockerfile"
        steps = list(self.instructions(path))
        text = path.read_text()
        self.assertIn("SQLX_OFFLINE=true", text)
        self.assertIn("migrations", text)
        self.assertIn("--locked", text)
        for binary in ("wearhouse-api", "wearhouse-ingest", "wearhouse-impute"):
            self.assertIn(f"target/release/{binary}", text)
        users = [rest for word, rest in steps if word == "USER"]
        self.assertTrue(users, "no USER: the services would run as root")
        self.assertNotRegex(users[-1], r"^(root|0)(:|$)")
        last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
        self.assertTrue(any(word == "USER" for word, _ in steps[last_from:]))

    def test_the_web_image_serves_the_built_page_with_the_shared_template(self):
        text = (ROOT / "docker" / "web.Dockerfile").read_text()
        self.assertIn("npm ci", text)
        self.assertIn("npm run build", text)
        self.assertIn("/etc/nginx/templates/default.conf.template", text)
        self.assertIn("NGINX_ENVSUBST_FILTER=^WEARHOUSE_", text)
        # Every placeholder of the template has a default in the image.
        for name in set(re.findall(r"\$\{(WEARHOUSE_[A-Z_]+)\}", NGINX_TEMPLATE.read_text())):
            self.assertRegex(text, rf"\b{name}=\S+", f"{name} has no default in web.Dockerfile")


def render(values, template=NGINX_TEMPLATE):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEARHOUSE_")}
    env.update(values)
    return subprocess.run(
        [str(RENDER), str(template)], capture_output=True, text=True, env=env, check=False
    )


IMAGE_VALUES = {
    "WEARHOUSE_WEB_LISTEN": "80",
    "WEARHOUSE_WEB_ROOT": "/usr/share/nginx/html",
    "WEARHOUSE_API_UPSTREAM": "api:8000",
    "WEARHOUSE_INGEST_UPSTREAM": "ingest:9102",
    "WEARHOUSE_NGINX_RESOLVER": "127.0.0.11",
    "WEARHOUSE_NGINX_ACCESS_LOG": "/var/log/nginx/access.log",
    "WEARHOUSE_GRAFANA_UPSTREAM": "grafana:3000",
    "WEARHOUSE_PROMETHEUS_UPSTREAM": "prometheus:9090",
    "WEARHOUSE_ALERTMANAGER_UPSTREAM": "alertmanager:9093",
    "WEARHOUSE_NGINX_TRANSPORT_DIR": "/etc/nginx/wearhouse",
}


def location_block(config, prefix):
    """The body of `location <prefix> { ... }` in a rendered configuration (no nested blocks)."""
    match = re.search(r"location\s+" + re.escape(prefix) + r"\s*\{(?P<body>[^}]*)\}", config)
    return match and match.group("body")


class NginxConfiguration(unittest.TestCase):
    def test_rendering_fills_every_placeholder_and_keeps_nginx_variables(self):
        result = render(IMAGE_VALUES)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotRegex(result.stdout, r"\$\{WEARHOUSE_[A-Z0-9_]*\}")
        self.assertIn("set $wearhouse_api api:8000;", result.stdout)
        self.assertIn("proxy_pass http://$wearhouse_api$wearhouse_api_uri;", result.stdout)
        # Consent links and the providers' callbacks go to the ingest daemon, path unchanged.
        self.assertIn("set $wearhouse_ingest ingest:9102;", result.stdout)
        self.assertIn("location ~ ^/(consent|oauth)/ {", result.stdout)
        self.assertIn("proxy_pass http://$wearhouse_ingest$request_uri;", result.stdout)

    def test_the_other_uis_are_proxied_only_after_the_sign_in_check(self):
        config = render(IMAGE_VALUES).stdout
        for ui, check in UIS.items():
            body = location_block(config, f"/{ui}/")
            self.assertTrue(body, f"no location /{ui}/")
            self.assertIn(f"auth_request /_wearhouse/check/{check};", body, ui)
            self.assertIn(f"proxy_pass http://$wearhouse_{ui};", body, ui)
            # Identity headers come from the API's answer, never from the client, and neither
            # the session cookie nor an API token reaches the UI.
            self.assertIn("auth_request_set $wearhouse_user $upstream_http_x_wearhouse_user;", body)
            self.assertIn("proxy_set_header X-Wearhouse-User $wearhouse_user;", body, ui)
            self.assertIn("proxy_set_header X-Wearhouse-Grafana-Role ", body, ui)
            self.assertIn("proxy_set_header Authorization \"\";", body, ui)
            self.assertIn("proxy_set_header Cookie $wearhouse_upstream_cookie;", body, ui)
            self.assertIn("error_page 401 = @wearhouse_sign_in;", body, ui)
            self.assertIn("error_page 403 = @wearhouse_forbidden;", body, ui)
        grafana = location_block(config, "/grafana/")
        self.assertIn("proxy_set_header X-Wearhouse-Grafana-Role $wearhouse_grafana_role;", grafana)
        for check in set(UIS.values()):
            body = location_block(config, f"= /_wearhouse/check/{check}")
            self.assertIn("internal;", body)
            self.assertIn(f"proxy_pass http://$wearhouse_api/auth/check/{check};", body)
        # Browsers to the sign-in page and back, other clients a 401.
        self.assertRegex(
            config,
            r"location @wearhouse_sign_in \{\s*if \(\$wearhouse_wants_page\) \{\s*"
            r"return 302 /\?next=\$request_uri;\s*\}[^}]*return 401 ",
        )
        self.assertIn("(?:^|;\\s*)wearhouse_session=[^;]*", config)

    def test_rendering_refuses_an_unset_placeholder(self):
        values = dict(IMAGE_VALUES)
        del values["WEARHOUSE_API_UPSTREAM"]
        result = render(values)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("WEARHOUSE_API_UPSTREAM is not set", result.stderr)

    def test_nginx_accepts_the_configuration_as_the_image_and_the_native_run_render_it(self):
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if nginx is None:
            self.skipTest("nginx is not installed (apt-get install nginx)")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "html").mkdir()
            native = {
                "WEARHOUSE_WEB_LISTEN": "127.0.0.1:18080",
                "WEARHOUSE_WEB_ROOT": str(tmp / "html"),
                "WEARHOUSE_API_UPSTREAM": "127.0.0.1:18000",
                "WEARHOUSE_INGEST_UPSTREAM": "127.0.0.1:19102",
                "WEARHOUSE_NGINX_RESOLVER": "127.0.0.1",
                "WEARHOUSE_NGINX_ACCESS_LOG": str(tmp / "access.log"),
                "WEARHOUSE_GRAFANA_UPSTREAM": "127.0.0.1:13000",
                "WEARHOUSE_PROMETHEUS_UPSTREAM": "127.0.0.1:19090",
                "WEARHOUSE_ALERTMANAGER_UPSTREAM": "127.0.0.1:19093",
            }
            # The image's values name hosts only Docker's DNS knows; nginx -t accepts them
            # because the upstream is resolved per request, which is the point.
            image = dict(IMAGE_VALUES, WEARHOUSE_WEB_LISTEN="127.0.0.1:18081",
                         WEARHOUSE_NGINX_ACCESS_LOG=str(tmp / "access.log"))
            for label, values in (("native", native), ("image", image)):
                self.assertEqual(nginx_check(nginx, tmp, values), "", label)
            # With a certificate: HTTPS, and plain HTTP only redirecting.
            subprocess.run([str(SELF_SIGNED), str(tmp / "tls"), "localhost"], check=True,
                           capture_output=True)
            tls = dict(native, WEARHOUSE_TLS_CERT=str(tmp / "tls/cert.pem"),
                       WEARHOUSE_TLS_KEY=str(tmp / "tls/key.pem"),
                       WEARHOUSE_TLS_LISTEN="127.0.0.1:18443")
            self.assertEqual(nginx_check(nginx, tmp, tls), "", "tls")
            listen = (tmp / "transport" / "listen.conf").read_text()
            self.assertIn("listen 127.0.0.1:18443 ssl;", listen)
            redirect = (tmp / "transport" / "redirect.conf").read_text()
            self.assertIn("return 301 https://$host$request_uri;", redirect)

    def test_without_a_certificate_nginx_listens_on_plain_http_and_redirects_nothing(self):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("WEARHOUSE_")}
            env["WEARHOUSE_WEB_LISTEN"] = "80"
            subprocess.run([str(TRANSPORT), tmp], check=True, env=env, capture_output=True)
            self.assertIn("listen 80;", (Path(tmp) / "listen.conf").read_text())
            self.assertNotIn("server", (Path(tmp) / "redirect.conf").read_text())
            # Half a certificate is an error, not silently plain HTTP.
            env["WEARHOUSE_TLS_CERT"] = "/nonexistent/cert.pem"
            half = subprocess.run([str(TRANSPORT), tmp], env=env, capture_output=True, text=True)
            self.assertNotEqual(half.returncode, 0)
            self.assertIn("WEARHOUSE_TLS_KEY", half.stderr)

    def test_hsts_is_sent_over_https_only(self):
        config = render(IMAGE_VALUES).stdout
        self.assertRegex(config, r"map \$https \$wearhouse_hsts \{\s*on \"max-age=\d+\";\s*default \"\";")
        self.assertIn("add_header Strict-Transport-Security $wearhouse_hsts always;", config)


def nginx_check(nginx, directory, values):
    """Renders the server block and the native run's main file into `directory` and returns
    what `nginx -t` complains about (empty when it accepts them)."""
    values = dict(values, WEARHOUSE_NGINX_TRANSPORT_DIR=str(directory / "transport"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEARHOUSE_")}
    transport = subprocess.run([str(TRANSPORT), str(directory / "transport")],
                               env=dict(env, **values), capture_output=True, text=True)
    if transport.returncode != 0:
        return transport.stderr
    server = render(values)
    if server.returncode != 0:
        return server.stderr
    (directory / "default.conf").write_text(server.stdout)
    (directory / "tmp").mkdir(exist_ok=True)
    main = render({"WEARHOUSE_NGINX_DIR": str(directory)}, ROOT / "scripts/stack.d/nginx.conf.template")
    if main.returncode != 0:
        return main.stderr
    (directory / "nginx.conf").write_text(main.stdout)
    # As root, workers need a user that exists (Debian has no group "nobody").
    user = ["-g", "user www-data www-data;"] if os.geteuid() == 0 else []
    check = subprocess.run(
        [nginx, "-t", "-q", "-p", str(directory), "-c", str(directory / "nginx.conf"),
         "-e", str(directory / "error.log"), *user],
        capture_output=True, text=True,
    )
    return "" if check.returncode == 0 else check.stderr

class SecretFiles(unittest.TestCase):
    """docker/init-secrets.sh: every secret readable by its services only, passwords in files
    and not in the log, but for the admins' generated ones, shown once."""

    def run_init(self, directory, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("WEARHOUSE_", "POSTGRES_", "GRAFANA_"))}
        env.update(WEARHOUSE_SECRETS_DIR=str(directory), **extra)
        result = subprocess.run(["sh", str(INIT_SECRETS)], env=env, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout + result.stderr

    def test_no_secret_is_readable_by_others_and_only_admin_passwords_are_shown_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            secrets = Path(tmp) / "secrets"
            first = self.run_init(secrets, WEARHOUSE_TLS="self-signed",
                                  WEARHOUSE_TLS_DIR=str(Path(tmp) / "tls"))
            files = sorted(p for p in secrets.iterdir())
            self.assertEqual(
                [p.name for p in files],
                ["admin-password", "grafana-admin-password", "grafana-db-password",
                 "metrics-token", "pgpass", "postgres-password", "token-key"],
            )
            for path in files + [Path(tmp) / "tls" / "key.pem"]:
                mode = path.stat().st_mode & 0o777
                self.assertEqual(mode & 0o007, 0, f"{path.name} is readable by others: {mode:o}")
                self.assertIn(mode, (0o600, 0o640), f"{path.name}: {mode:o}")
            if os.geteuid() == 0:
                # Handed to the reader: the database, or the API and Prometheus' group.
                self.assertEqual((secrets / "postgres-password").stat().st_uid, 70)
                self.assertEqual((secrets / "metrics-token").stat().st_gid, 65534)
                self.assertEqual((secrets / "pgpass").stat().st_uid, 10001)
                # The grant key is the ingest's alone.
                self.assertEqual((secrets / "token-key").stat().st_uid, 10001)
                self.assertEqual((secrets / "token-key").stat().st_mode & 0o777, 0o600)
            admin = (secrets / "admin-password").read_text()
            self.assertEqual(first.count(admin), 1, "the first admin's password is shown once")
            for quiet in ("postgres-password", "metrics-token", "grafana-db-password", "token-key"):
                self.assertNotIn((secrets / quiet).read_text(), first, quiet)
            again = self.run_init(secrets)
            for name in ("admin-password", "grafana-admin-password", "postgres-password"):
                self.assertNotIn((secrets / name).read_text(), again, f"{name} shown again")


if __name__ == "__main__":
    unittest.main()
