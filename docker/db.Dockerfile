# syntax=docker/dockerfile:1
# The database image: TimescaleDB community with pgBackRest, used by two services of
# docker-compose.yml. The db service's archive_command pushes every WAL segment to the backup
# repository with it; the backup service (same image, so the same pgBackRest and PostgreSQL
# versions) runs `wearhouse-backup schedule`: base backups, retention and the status file
# node-exporter serves. Build from the repository root:
#   docker build -f docker/db.Dockerfile -t wearhouse-db .
FROM timescale/timescaledb:2.28.3-pg15
# bash, coreutils (GNU date parses restore times), jq (pgBackRest's JSON) and runuser
# (util-linux) for scripts/backup. The repository and status folders belong to postgres, so
# fresh named volumes mounted there are writable by the database and the backup service.
RUN apk add --no-cache pgbackrest bash coreutils jq util-linux \
 && install -d -o postgres -g postgres -m 0750 /var/lib/pgbackrest \
 && install -d -o postgres -g postgres -m 0755 /var/lib/wearhouse-backup-metrics
COPY scripts/backup /usr/local/bin/wearhouse-backup
