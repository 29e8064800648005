# Production image: CPU torch, content baked in, non-root, health-checked.
# The build reads no network: the wheels come from docker/wheels, fetched on the host first.
#   make image                          (podman; scripts/image-build.sh does both steps)
#   scripts/image-wheels.sh && docker build -t glossary-lab .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/glossary PATH=/opt/glossary/bin:$PATH \
    GLOSSARY_HOST=0.0.0.0 GLOSSARY_PORT=8000 \
    GLOSSARY_DATABASE_URL=sqlite:////srv/glossary/db/glossary.db \
    GLOSSARY_DATA_DIR=/srv/glossary/data \
    GLOSSARY_CACHE_DIR=/srv/glossary/cache

WORKDIR /srv/glossary
# The dependencies first, so that this layer (torch, most of the image) is reused until the
# pins change. A virtual environment: Debian's own Python refuses pip outside one (PEP 668).
# The wheels are bind-mounted, not copied: they never become a layer of the image. torch's
# C++ headers and test binaries (150 MB) serve only to build extensions and test torch.
COPY docker/wheels/requirements.txt /tmp/requirements.txt
RUN --mount=type=bind,source=docker/wheels,target=/tmp/wheels \
    python3 -m venv /opt/glossary \
    && pip install --no-index --find-links /tmp/wheels -r /tmp/requirements.txt \
    && rm -r /tmp/requirements.txt /opt/glossary/lib/python3.11/site-packages/torch/include \
       /opt/glossary/lib/python3.11/site-packages/torch/test \
    && useradd --system --uid 10001 --home-dir /srv/glossary --shell /usr/sbin/nologin glossary
COPY pyproject.toml ./
COPY app ./app
# Editable: the app finds templates/ and static/ beside app/.
RUN pip install --no-index --no-deps --no-build-isolation -e .
COPY templates ./templates
COPY static ./static
COPY data ./data
COPY docker/entrypoint.sh /usr/local/bin/glossary-entrypoint
# With the default SQLite URL the database is built into the image; with PostgreSQL
# (docker-compose.yml) the entry script loads it at start. The language model is trained
# at the first start into cache/ (mount a volume there to keep it).
RUN mkdir -p db cache && glossary load && chown -R glossary db cache
USER glossary
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import os,urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['GLOSSARY_PORT']).status != 200)"
CMD ["glossary-entrypoint"]
