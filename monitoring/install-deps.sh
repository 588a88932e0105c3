#!/bin/sh
# Installs what monitoring/check.sh and tests/monitoring need on Debian: promtool (package
# prometheus), amtool and alertmanager (prometheus-alertmanager), busybox (to run the
# AlertManager entrypoint with the same shell tools as the official image) and python3.
# Idempotent and quiet: does nothing when everything is there already.
set -eu

need=""
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v amtool >/dev/null 2>&1 || need="$need prometheus-alertmanager"
command -v busybox >/dev/null 2>&1 || need="$need busybox"
command -v python3 >/dev/null 2>&1 || need="$need python3"
[ -z "$need" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
else
    sudo=
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # word splitting of the package list is intended
$sudo apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
# shellcheck disable=SC2086
$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $need >/dev/null
