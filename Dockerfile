# Production image: CPU torch, content baked in, non-root, health-checked.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    GLOSSARY_HOST=0.0.0.0 GLOSSARY_PORT=8000 \
    GLOSSARY_DATABASE_URL=sqlite:////srv/glossary/db/glossary.db \
    GLOSSARY_DATA_DIR=/srv/glossary/data

WORKDIR /srv/glossary
COPY pyproject.toml ./
COPY app ./app
# The CPU wheel index keeps the image small (the default index would pull CUDA builds).
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -e . \
    && useradd --system --uid 10001 --home /srv/glossary glossary
COPY templates ./templates
COPY static ./static
COPY data ./data
COPY docker/entrypoint.sh /usr/local/bin/glossary-entrypoint
# With the default SQLite URL the database is built into the image; with PostgreSQL
# (docker-compose.yml) the entry script loads it at start.
RUN mkdir -p db && glossary load && chown -R glossary db
USER glossary
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["glossary-entrypoint"]
