#!/bin/sh
# Renders the AlertManager configuration template from the environment.
#
#   render-config.sh TEMPLATE OUTPUT
#
# Replaces ${NAME} and ${NAME:-default} (defaults may nest another ${...}) outside comment
# lines. Values are escaped for the YAML double-quoted strings the template puts them in; a
# value with a line break, or a required variable that is unset or empty, is an error. POSIX sh
# and awk only, so it runs in the busybox-based official image as well as on Debian.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 TEMPLATE OUTPUT" >&2
    exit 2
fi
template=$1
output=$2

fail() {
    echo "render-config: $*" >&2
    exit 1
}

[ -r "$template" ] || fail "cannot read template $template"

case "${WEARHOUSE_ALERT_SMTP_REQUIRE_TLS:-true}" in
    true | false) ;;
    *) fail "WEARHOUSE_ALERT_SMTP_REQUIRE_TLS must be true or false" ;;
esac

if [ -n "${WEARHOUSE_ALERT_SMTP_USERNAME:-}" ]; then
    [ -n "${WEARHOUSE_ALERT_SMTP_PASSWORD_FILE:-}" ] ||
        fail "WEARHOUSE_ALERT_SMTP_USERNAME is set but no password: set WEARHOUSE_ALERT_SMTP_PASSWORD_FILE (or WEARHOUSE_ALERT_SMTP_PASSWORD for entrypoint.sh)"
    [ -r "$WEARHOUSE_ALERT_SMTP_PASSWORD_FILE" ] ||
        fail "cannot read the SMTP password file $WEARHOUSE_ALERT_SMTP_PASSWORD_FILE"
fi

# Write next to the target and move into place, so a failed render leaves no half file.
partial="$output.partial.$$"
trap 'rm -f "$partial"' EXIT
awk '
function fail(msg) {
    print "render-config: " msg > "/dev/stderr"
    failed = 1
    exit 1
}
function escape(v,    out, k, c) {
    if (index(v, "\n") || index(v, "\r")) fail("line break in the value of " current)
    # A loop rather than gsub(): awks disagree on backslashes in gsub replacements.
    out = ""
    for (k = 1; k <= length(v); k++) {
        c = substr(v, k, 1)
        if (c == "\\" || c == "\"") out = out "\\"
        out = out c
    }
    return out
}
# Renders s; returns the text with every ${...} replaced.
function render(s,    out, i, j, name, rest, depth, c, dflt, has_default) {
    out = ""
    while ((i = index(s, "${")) > 0) {
        out = out substr(s, 1, i - 1)
        rest = substr(s, i + 2)
        if (!match(rest, /^[A-Za-z_][A-Za-z0-9_]*/)) fail("bad placeholder near: ${" rest)
        name = substr(rest, 1, RLENGTH)
        rest = substr(rest, RLENGTH + 1)
        has_default = 0
        if (substr(rest, 1, 2) == ":-") {
            has_default = 1
            rest = substr(rest, 3)
            depth = 1
            for (j = 1; j <= length(rest); j++) {
                c = substr(rest, j, 1)
                if (c == "$" && substr(rest, j + 1, 1) == "{") { depth++; j++ }
                else if (c == "}" && --depth == 0) break
            }
            if (depth != 0) fail("unclosed placeholder ${" name)
            dflt = substr(rest, 1, j - 1)
            rest = substr(rest, j + 1)
        } else if (substr(rest, 1, 1) == "}") {
            rest = substr(rest, 2)
        } else {
            fail("bad placeholder ${" name)
        }
        if (name in ENVIRON && ENVIRON[name] != "") {
            current = name
            out = out escape(ENVIRON[name])
        } else if (has_default) {
            out = out render(dflt)
        } else {
            fail(name " is required but not set")
        }
        s = rest
    }
    return out s
}
# Comment lines are copied as they are, so they can name placeholders.
/^[ \t]*#/ { print; next }
{ print render($0) }
END { if (failed) exit 1 }
' "$template" >"$partial"
chmod 0644 "$partial"
mv "$partial" "$output"
trap - EXIT
