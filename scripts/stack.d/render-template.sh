#!/bin/sh
# Renders a template's ${WEARHOUSE_…} placeholders from the environment, as nginx's image does
# at start with envsubst and NGINX_ENVSUBST_FILTER=^WEARHOUSE_ (docker/web.Dockerfile), so the
# native run serves the very same configuration. Other `$` (nginx's own variables) stay as they
# are. Unlike envsubst, a placeholder whose variable is unset is an error, not an empty string.
#
#   scripts/stack.d/render-template.sh TEMPLATE > OUTPUT
set -eu
[ $# -eq 1 ] || { echo "usage: $0 TEMPLATE" >&2; exit 2; }
awk '
{
  line = $0
  out = ""
  while (match(line, /\$\{WEARHOUSE_[A-Z0-9_]*\}/)) {
    name = substr(line, RSTART + 2, RLENGTH - 3)
    if (!(name in ENVIRON)) {
      printf "%s:%d: %s is not set\n", FILENAME, NR, name > "/dev/stderr"
      failed = 1
    }
    out = out substr(line, 1, RSTART - 1) ENVIRON[name]
    line = substr(line, RSTART + RLENGTH)
  }
  print out line
}
END { exit failed }
' "$1"
