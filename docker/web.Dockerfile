# syntax=docker/dockerfile:1
# The researchers' dashboard: built with npm from the lockfile, served by nginx, which also
# proxies /api/ to wearhouse-api. Build from the repository root:
#   docker build -f docker/web.Dockerfile -t wearhouse-web .

FROM node:22.12.0-bookworm-slim AS frontend
WORKDIR /src/frontend
# Dependencies first, so editing the page does not reinstall them.
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM nginx:1.28.0-alpine
# nginx's entrypoint renders /etc/nginx/templates/*.template into /etc/nginx/conf.d/ at start,
# substituting only these variables (nginx's own $variables stay untouched).
ENV NGINX_ENVSUBST_FILTER=^WEARHOUSE_ \
    WEARHOUSE_WEB_LISTEN=80 \
    WEARHOUSE_WEB_ROOT=/usr/share/nginx/html \
    WEARHOUSE_API_UPSTREAM=api:8000 \
    WEARHOUSE_INGEST_UPSTREAM=ingest:9102 \
    WEARHOUSE_NGINX_RESOLVER=127.0.0.11 \
    WEARHOUSE_NGINX_ACCESS_LOG=/var/log/nginx/access.log \
    WEARHOUSE_GRAFANA_UPSTREAM=grafana:3000 \
    WEARHOUSE_PROMETHEUS_UPSTREAM=prometheus:9090 \
    WEARHOUSE_ALERTMANAGER_UPSTREAM=alertmanager:9093 \
    WEARHOUSE_NGINX_TRANSPORT_DIR=/etc/nginx/wearhouse \
    WEARHOUSE_TLS_LISTEN=443 \
    WEARHOUSE_TLS_DIR=/run/wearhouse-tls
RUN rm -f /etc/nginx/conf.d/default.conf /usr/share/nginx/html/*
COPY docker/nginx/default.conf.template /etc/nginx/templates/default.conf.template
# Plain HTTP or HTTPS, decided at each start from the certificate (after the templates).
COPY docker/nginx/transport.sh /docker-entrypoint.d/25-wearhouse-transport.sh
COPY --from=frontend /src/frontend/dist/ /usr/share/nginx/html/
EXPOSE 80 443
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD wget -q -O /dev/null http://127.0.0.1/nginx-health || exit 1
