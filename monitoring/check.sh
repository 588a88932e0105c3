#!/bin/sh
# Static checks of the monitoring configuration, for CI and before committing:
#   - promtool check config (prometheus.yml and the rule files it loads)
#   - promtool check rules and promtool test rules (unit tests in monitoring/tests)
#   - every alert in monitoring/rules has a unit test that expects it to fire
#   - the AlertManager template renders (example settings) and passes amtool check-config,
#     rendered both by the system shell and by busybox, as in the official image
# Needs promtool, amtool and busybox: monitoring/install-deps.sh installs them.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

for tool in promtool amtool; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "check.sh: $tool not found; run monitoring/install-deps.sh" >&2
        exit 1
    }
done

step() { printf '\n== %s\n' "$*"; }

step "promtool $(promtool --version 2>&1 | head -n 1 | cut -d' ' -f3)"
step "check config"
# The API's scrape token is a file only the running stack has; promtool checks that it exists,
# so the check reads a copy of the configuration whose token file is a stand-in.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'stand-in-token\n' >"$tmp/metrics-token"
sed "s|/run/wearhouse-secrets/metrics-token|$tmp/metrics-token|" prometheus.yml >"$tmp/prometheus.yml"
cp -r rules "$tmp/rules"
grep -q "credentials_file: $tmp/metrics-token" "$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"

step "check rules"
promtool check rules rules/*.yml

step "test rules"
promtool test rules tests/*.test.yml

step "every alert has a firing unit test"
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' rules/*.yml | sort -u)
missing=""
for alert in $alerts; do
    # A firing case is an `alertname: X` test whose exp_alerts is not the empty list.
    if ! awk -v name="$alert" '
        $1 == "alertname:" { current = $2; next }
        $1 == "exp_alerts:" && current == name && $2 != "[]" { found = 1 }
        END { exit !found }
    ' tests/*.test.yml; then
        missing="$missing $alert"
    fi
done
if [ -n "$missing" ]; then
    echo "alerts without a firing unit test:$missing" >&2
    exit 1
fi
echo "  SUCCESS: all alerts covered"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'example-password' >"$tmp/smtp_password"

# Example settings, with every variable set and characters that need escaping in the sender.
render() {
    env WEARHOUSE_ALERT_SMTP_SMARTHOST=smtp.example.org:587 \
        WEARHOUSE_ALERT_EMAIL_FROM='"wearhouse\alerts" <alerts@example.org>' \
        WEARHOUSE_ALERT_EMAIL_TO='ops@example.org' \
        WEARHOUSE_ALERT_STUDY_EMAIL_TO='study@example.org, coordinator@example.org' \
        WEARHOUSE_ALERT_SMTP_USERNAME=alerts@example.org \
        WEARHOUSE_ALERT_SMTP_PASSWORD_FILE="$tmp/smtp_password" \
        WEARHOUSE_ALERT_TEMPLATES_DIR="$here/alertmanager/templates" \
        "$@"
}

step "amtool $(amtool --version 2>&1 | head -n 1 | cut -d' ' -f3)"
step "render and check the AlertManager configuration"
render sh alertmanager/render-config.sh alertmanager/alertmanager.yml.tmpl "$tmp/alertmanager.yml"
amtool check-config "$tmp/alertmanager.yml"

if command -v busybox >/dev/null 2>&1; then
    step "render with busybox tools only, as in the official image"
    mkdir "$tmp/bin"
    busybox --install -s "$tmp/bin"
    render PATH="$tmp/bin" "$(command -v busybox)" sh alertmanager/render-config.sh \
        alertmanager/alertmanager.yml.tmpl "$tmp/alertmanager-busybox.yml"
    cmp "$tmp/alertmanager.yml" "$tmp/alertmanager-busybox.yml"
    echo "  SUCCESS: same configuration"
else
    echo "check.sh: busybox not found; run monitoring/install-deps.sh" >&2
    exit 1
fi
