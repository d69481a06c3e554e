# Production image: gunicorn via `cds-service serve`. Content and card templates are data next to the package.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CDS_CONTENT_DIR=/app/content CDS_CARDS_DIR=/app/cards \
    CDS_DATABASE_URL=sqlite:////var/lib/cds-service/cds-service.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
RUN pip install --no-cache-dir . && useradd --system --uid 10001 cds && mkdir -p /var/lib/cds-service \
    && chown cds /var/lib/cds-service
COPY content ./content
COPY cards ./cards

USER cds
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
# CDS_PUBLIC_URL and CDS_TRUSTED_ISSUERS must be set by the deployment (JWT auth is on by default).
CMD ["cds-service", "serve", "--host", "0.0.0.0", "--port", "8080"]
