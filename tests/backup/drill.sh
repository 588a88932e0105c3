#!/usr/bin/env bash
# Restore drill: proves that scripts/backup brings the database back as it was at a chosen
# moment. It starts a throwaway cluster (as the `postgres` user when run as root) with WAL
# archiving to a throwaway pgBackRest repository, applies migrations/ in order with psql (the
# same files `wearhouse-api migrate` applies; TimescaleDB is preloaded where installed), loads
# participants and raw data, takes a full backup, loads more, notes a time T and the row count
# and checksum of every table (hypertables and continuous aggregates included) in the same
# snapshot, then inserts, updates and deletes, restores to T into a fresh cluster and requires
# the same counts and checksums there. It also checks the refusals users rely on (a time before
# the oldest backup, a non-empty target folder, a malformed time) and that the backup metrics
# meet the alert rules' contract, that the schedule takes the first backup and writes the
# status file, and that retention expires old backups. Prints the times it measured.
#
#   tests/backup/drill.sh            needs PostgreSQL's server package, pgbackrest and jq
#   DRILL_DEBUG=1 tests/backup/drill.sh   also shows pgBackRest's report of the backup
#   DRILL_TIMESCALEDB=off tests/backup/drill.sh   plain PostgreSQL where TimescaleDB is installed
#   DRILL_PARTICIPANTS=200 tests/backup/drill.sh  more data per batch (default 3 participants,
#                                                 a day of minute samples each)
#   DRILL_PGBACKREST_CONFIG=$'repo1-type=s3\n...' tests/backup/drill.sh
#                                                 pgBackRest options for the repository (lines
#                                                 of its [global] section; tests/backup/s3.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { printf 'drill: %s\n' "$*"; }
fail() { printf 'drill: FAILED: %s\n' "$*" >&2; exit 1; }
for tool in pgbackrest jq; do
  command -v "$tool" >/dev/null || fail "$tool not found (apt-get install $tool)"
done

bin=$(dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")")
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/wearhouse-drill.XXXXXX")
chmod 755 "$dir"
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
port=$(free_port)
restored_port=$(free_port)
schedule_pid=""
cleanup() {
  local d
  [ -z "$schedule_pid" ] || kill "$schedule_pid" 2>/dev/null || true
  for d in "$dir/data" "$dir/restored"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

# What scripts/backup reads: this cluster and this repository.
export WEARHOUSE_BACKUP_REPO="$dir/repo" WEARHOUSE_BACKUP_PGDATA="$dir/data" \
  WEARHOUSE_BACKUP_PGHOST="$dir" WEARHOUSE_BACKUP_PGPORT="$port" WEARHOUSE_BACKUP_PGUSER=postgres \
  WEARHOUSE_BACKUP_STANZA=drill PGBACKREST_LOCK_PATH="$dir/lock"
# Every pgBackRest option comes from here, not from a configuration file of this machine.
export PGBACKREST_CONFIG="$dir/pgbackrest.conf"
printf '[global]\n%s\n' "${DRILL_PGBACKREST_CONFIG:-}" >"$PGBACKREST_CONFIG"
repository=$(sed -n 's/^repo1-type=//p' "$PGBACKREST_CONFIG")
repository=${repository:-posix}
backup=("$root/scripts/backup")

as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --lc-collate=C >/dev/null
archive_timeout=60
{
  printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nport = %s\n" "$dir" "$port"
  printf "archive_mode = on\narchive_timeout = %s\n" "$archive_timeout"
  printf "archive_command = '%s'\n" "$("${backup[@]}" archive-command)"
  if [ -f "$(dirname "$bin")/lib/timescaledb.so" ] && [ "${DRILL_TIMESCALEDB:-}" != off ]; then
    printf "shared_preload_libraries = 'timescaledb'\n"
  fi
} | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/source.log" -w start >/dev/null

psql_at() { # PORT DATABASE [psql args...]
  local p="$1" d="$2"
  shift 2
  PGOPTIONS="-c client_min_messages=warning" "$bin/psql" -h 127.0.0.1 -p "$p" -U postgres -d "$d" \
    -XqtA -v ON_ERROR_STOP=1 "$@"
}
psql_at "$port" postgres -c 'create database wearhouse'
for migration in "$root"/migrations/*.sql; do
  psql_at "$port" wearhouse -1 -f "$migration" >/dev/null || fail "migration $(basename "$migration")"
done
say "cluster on 127.0.0.1:$port migrated ($(ls "$root"/migrations/*.sql | wc -l) files)"

"${backup[@]}" setup >/dev/null

participants="${DRILL_PARTICIPANTS:-3}"
load() { # BATCH: participants and a day of minute-level heart rate each
  psql_at "$port" wearhouse <<SQL
insert into participants (participant_id, provider)
  select 'drill-$1-' || i, 'synthetic' from generate_series(1, $participants) i;
insert into raw_data (timestamp, participant_id, data_type, value_numeric)
  select timestamp '2026-01-0$1 00:00' + m * interval '1 minute', 'drill-$1-' || i,
         'heart_rate', 60 + (m * 7 + i) % 40
  from generate_series(1, $participants) i, generate_series(0, 1439) m;
SQL
}
# Continuous aggregates (TimescaleDB) materialised in the order they build on each other, so
# their rows are part of what the restore must bring back.
refresh_aggregates() {
  [ "$(psql_at "$port" wearhouse -c 'select wearhouse_backend()')" = timescaledb ] || return 0
  local view
  for view in $(psql_at "$port" wearhouse -c "select format('%I.%I', view_schema, view_name)
      from timescaledb_information.continuous_aggregates
      order by substring(materialization_hypertable_name from '\d+$')::int"); do
    psql_at "$port" wearhouse -c "call refresh_continuous_aggregate('$view', null, null)"
  done
}
load 1
# The first backup as the backup service makes it: the schedule finds none and takes one,
# and its status file then counts it.
started=$SECONDS
WEARHOUSE_BACKUP_METRICS_FILE="$dir/textfile/backup.prom" WEARHOUSE_BACKUP_METRICS_INTERVAL_SECS=1 \
  "${backup[@]}" schedule >"$dir/schedule.out" 2>&1 &
schedule_pid=$!
until grep -qx 'wearhouse_backup_count 1' "$dir/textfile/backup.prom" 2>/dev/null; do
  kill -0 "$schedule_pid" 2>/dev/null || { cat "$dir/schedule.out" >&2; fail "the schedule stopped"; }
  [ $((SECONDS - started)) -lt 300 ] || { cat "$dir/schedule.out" >&2; fail "no backup within 5 minutes"; }
  sleep 0.5
done
backup_secs=$((SECONDS - started))
size=$(psql_at "$port" postgres -c "select pg_size_pretty(sum(pg_database_size(oid))) from pg_database")
kill -TERM "$schedule_pid"
wait "$schedule_pid" || fail "the schedule did not stop cleanly on SIGTERM"
schedule_pid=""
[ -n "${DRILL_DEBUG:-}" ] && cat "$dir/schedule.out" >&2
load 2
refresh_aggregates

# Every table of the application, hypertables by their parent (chunks included) and continuous
# aggregates by their view: count and an md5 of the rows in a fixed order.
tables_sql="select format('%I.%I', n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'm') and not c.relispartition
    and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
    and n.nspname !~ '^_?timescaledb'
  union
  select format('%I.%I', view_schema, view_name)
  from timescaledb_information.continuous_aggregates
  where to_regclass('timescaledb_information.continuous_aggregates') is not null
  order by 1"
if ! psql_at "$port" wearhouse -c "select to_regclass('timescaledb_information.continuous_aggregates')" | grep -q .; then
  tables_sql="${tables_sql%%union*} order by 1"
fi
mapfile -t tables < <(psql_at "$port" wearhouse -c "$tables_sql")
[ "${#tables[@]}" -gt 5 ] || fail "found only ${#tables[@]} tables: ${tables[*]}"
backend=$(psql_at "$port" wearhouse -c 'select wearhouse_backend()')
caggs=""
if [ "$backend" != postgres ]; then
  hypertables=$(psql_at "$port" wearhouse -c "select format('%I.%I', hypertable_schema, hypertable_name)
    from timescaledb_information.hypertables where hypertable_schema !~ '^_timescaledb'")
  caggs=$(psql_at "$port" wearhouse -c "select format('%I.%I', view_schema, view_name)
    from timescaledb_information.continuous_aggregates")
  for t in $hypertables $caggs; do
    printf '%s\n' "${tables[@]}" | grep -qxF "$t" || fail "$t is not among the compared tables"
  done
  [ "$backend" = timescaledb-apache ] || [ -n "$caggs" ] || fail "TimescaleDB without continuous aggregates"
  backend+=" ($(wc -w <<<"$hypertables") hypertables, $(wc -w <<<"$caggs") continuous aggregates)"
fi
checksum_sql=""
for t in "${tables[@]}"; do
  checksum_sql+="${checksum_sql:+ union all }select '$t', count(*), md5(coalesce(string_agg(r::text, E'\\n' order by r::text), '')) from $t r"
done
checksum_sql+=" order by 1"

# T and the checksums in one snapshot: they describe exactly the state at T.
psql_at "$port" wearhouse -o "$dir/snapshot" <<SQL
begin isolation level repeatable read;
select 'T', clock_timestamp(), '';
$checksum_sql;
commit;
SQL
target=$(awk -F'|' '$1 == "T" { print $2 }' "$dir/snapshot")
grep -v '^T|' "$dir/snapshot" >"$dir/expected"
grep -q "^public.raw_data|$((2 * participants * 1440))|" "$dir/expected" || fail "raw_data at T: $(grep raw_data "$dir/expected")"
for view in $caggs; do
  grep -q "^$view|0|" "$dir/expected" && fail "continuous aggregate $view is empty at T"
done

# After T: new rows, changed rows and deleted rows, all of which the restore must undo.
load 3
refresh_aggregates
psql_at "$port" wearhouse <<SQL
update raw_data set value_numeric = value_numeric + 1 where participant_id = 'drill-2-1';
delete from raw_data where participant_id = 'drill-1-2';
update participants set status = 'withdrawn' where participant_id = 'drill-1-3';
SQL
"${backup[@]}" setup >/dev/null # switches WAL and waits for it to be archived
psql_at "$port" wearhouse -c "$checksum_sql" >"$dir/source-now"
cmp -s "$dir/expected" "$dir/source-now" && fail "the changes after T changed no checksum"

# Refusals, each naming what to fix.
expect_refusal() { # MESSAGE ARGS...
  local message="$1" out
  shift
  if out=$("${backup[@]}" "$@" 2>&1); then fail "scripts/backup $* succeeded"; fi
  grep -qF -- "$message" <<<"$out" || fail "scripts/backup $*: expected '$message', got: $out"
}
expect_refusal "is before the oldest backup finished" restore --to '2000-01-01 00:00:00+00' --data "$dir/early"
expect_refusal "is not a time" restore --to 'yesterday-ish' --data "$dir/early"
expect_refusal "is in the future" restore --to '2999-01-01 00:00:00+00' --data "$dir/early"
mkdir -p "$dir/full" && touch "$dir/full/something"
expect_refusal "is not empty" restore --to "$target" --data "$dir/full"
expect_refusal "needs --to TIME" restore --data "$dir/early"
expect_refusal "must be full, diff or incr, not 'weekly'" create --type weekly
WEARHOUSE_BACKUP_RETENTION_FULL=0 expect_refusal "WEARHOUSE_BACKUP_RETENTION_FULL must be a positive" list
[ ! -e "$dir/early" ] || fail "a refused restore left $dir/early behind"

# The metrics the alert rules query, as the rules' contract check reads them.
"${backup[@]}" metrics >"$dir/metrics"
PYTHONDONTWRITEBYTECODE=1 python3 - "$dir/metrics" "$root/tests/monitoring" <<'PY' || fail "backup metrics"
import sys
sys.path.insert(0, sys.argv[2])
from check_metric_contract import parse_exposition, problems
text = open(sys.argv[1]).read()
found = problems("backup", text)
values = {name: line.split()[-1] for line in text.splitlines() if not line.startswith("#")
          for name, _ in parse_exposition(line)}
if float(values.get("wearhouse_backup_last_success_timestamp_seconds", 0)) <= 0:
    found.append("no last backup time")
if values.get("wearhouse_backup_count") != "1" or float(values["wearhouse_backup_wal_archived_total"]) < 2:
    found.append("backup count or archived WAL count wrong")
for problem in found:
    print(problem, file=sys.stderr)
sys.exit(1 if found else 0)
PY

started=$SECONDS
"${backup[@]}" restore --to "$target" --data "$dir/restored" --port "$restored_port" >"$dir/restore.out" \
  || { cat "$dir/restore.out" >&2; fail "restore to $target"; }
restore_secs=$((SECONDS - started))
psql_at "$restored_port" wearhouse -c "$checksum_sql" >"$dir/restored-checksums"
if ! diff -u "$dir/expected" "$dir/restored-checksums" >&2; then
  fail "the restored database differs from the source at $target (above: - source at T, + restored)"
fi
[ "$(psql_at "$restored_port" postgres -c 'show archive_mode')" = off ] || fail "the copy archives WAL"

# Retention: with one full backup to keep, a new one expires the first.
first=$("${backup[@]}" list | awk '$2 == "full" { print $1 }')
WEARHOUSE_BACKUP_RETENTION_FULL=1 "${backup[@]}" create >"$dir/create.out" || fail "second backup"
second=$("${backup[@]}" list | awk '$2 == "full" { print $1 }')
[ "$(wc -w <<<"$second")" = 1 ] && [ "$second" != "$first" ] \
  || fail "retention 1 kept '$second' (before: '$first')"

# With the database down the status says so instead of going silent or inventing values.
as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
"${backup[@]}" metrics >"$dir/metrics-down"
grep -qx 'wearhouse_backup_archiver_up 0' "$dir/metrics-down" \
  && grep -qx 'wearhouse_backup_repository_up 1' "$dir/metrics-down" \
  && ! grep -q '^wearhouse_backup_wal_' "$dir/metrics-down" \
  || fail "metrics with the database down: $(grep -v '^#' "$dir/metrics-down")"

say "OK: restored to $target from a $repository repository; ${#tables[@]} tables on $backend, counts and checksums equal to the source at T"
say "measured: full backup of $size by the schedule (stanza check included) ${backup_secs} s, restore (files, WAL replay, promotion) ${restore_secs} s; archive_timeout ${archive_timeout} s"
