#!/bin/sh
# Generates a self-signed certificate for a local demo of HTTPS: DIR/cert.pem and DIR/key.pem
# (the key readable by its owner only), for the names given (DNS names or IP addresses),
# valid for a year. Kept when DIR already holds both. Browsers warn about it, as they should;
# clients that are told to trust it (curl --cacert DIR/cert.pem) do not.
#
#   docker/tls-self-signed.sh DIR NAME...
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DIR NAME..." >&2; exit 2; }
dir="$1"
shift
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then
  echo "tls: keeping the certificate in $dir" >&2
  exit 0
fi
command -v openssl >/dev/null || { echo "tls: openssl is missing (apt-get install openssl)" >&2; exit 1; }
san=""
for name in "$@"; do
  case "$name" in
    *[!0-9.]*) entry="DNS:$name" ;;
    *) entry="IP:$name" ;;
  esac
  san="${san:+$san,}$entry"
done
mkdir -p "$dir"
(
  umask 077
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=$1" -addext "subjectAltName=$san" \
    -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp" 2>/dev/null
)
chmod 0600 "$dir/key.pem.tmp"
chmod 0644 "$dir/cert.pem.tmp"
mv "$dir/key.pem.tmp" "$dir/key.pem"
mv "$dir/cert.pem.tmp" "$dir/cert.pem"
echo "tls: generated a self-signed certificate for $san in $dir" >&2
