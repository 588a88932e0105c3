#!/bin/sh
# Container entrypoint for AlertManager: renders the configuration from the environment, then
# runs AlertManager on it with the arguments given (e.g. --storage.path=/alertmanager).
#
# The SMTP password comes from WEARHOUSE_ALERT_SMTP_PASSWORD_FILE (a Docker secret) or, failing
# that, from WEARHOUSE_ALERT_SMTP_PASSWORD, which is written to a file only this user can read:
# it is never put into the rendered configuration.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template=${WEARHOUSE_ALERT_CONFIG_TEMPLATE:-$here/alertmanager.yml.tmpl}
out_dir=${WEARHOUSE_ALERT_RENDER_DIR:-${TMPDIR:-/tmp}/wearhouse-alertmanager}
alertmanager=${WEARHOUSE_ALERTMANAGER_BIN:-alertmanager}

umask 077
mkdir -p "$out_dir"

if [ -z "${WEARHOUSE_ALERT_SMTP_PASSWORD_FILE:-}" ] && [ -n "${WEARHOUSE_ALERT_SMTP_PASSWORD:-}" ]; then
    printf '%s' "$WEARHOUSE_ALERT_SMTP_PASSWORD" >"$out_dir/smtp_password"
    WEARHOUSE_ALERT_SMTP_PASSWORD_FILE=$out_dir/smtp_password
    export WEARHOUSE_ALERT_SMTP_PASSWORD_FILE
fi
# AlertManager itself needs no copy of the password in its environment.
unset WEARHOUSE_ALERT_SMTP_PASSWORD

: "${WEARHOUSE_ALERT_TEMPLATES_DIR:=$here/templates}"
export WEARHOUSE_ALERT_TEMPLATES_DIR

"$here/render-config.sh" "$template" "$out_dir/alertmanager.yml"
exec "$alertmanager" --config.file="$out_dir/alertmanager.yml" "$@"
