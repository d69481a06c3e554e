# syntax=docker/dockerfile:1
# Production image: gunicorn via `cds-service serve`. Dependencies from requirements.lock (pip-compile, hashes);
# content and card templates are data next to the package. Rebuild the lock: see README "Operations".

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11.7-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CDS_CONTENT_DIR=/app/content CDS_CARDS_DIR=/app/cards \
    CDS_DATABASE_URL=sqlite:////var/lib/cds-service/cds-service.db
RUN groupadd --system --gid 10001 cds \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin cds \
    && mkdir -p /var/lib/cds-service \
    && chown 10001:10001 /var/lib/cds-service
COPY --from=build /opt/venv /opt/venv
COPY content /app/content
COPY cards /app/cards
WORKDIR /app
USER 10001:10001
# The SQLite default (one host). Several hosts share PostgreSQL instead: set CDS_DATABASE_URL.
VOLUME ["/var/lib/cds-service"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# Workers: CDS_WORKERS, else the container's CPU limit (min 2). CDS_PUBLIC_URL and CDS_TRUSTED_ISSUERS must be set
# by the deployment (JWT auth is on by default).
CMD ["cds-service", "serve", "--host", "0.0.0.0", "--port", "8080"]
