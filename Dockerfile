# syntax=docker/dockerfile:1
# slawatch: one image for every command (`run`, `ingest`, `act`, `report`, `replay`, `check`...).
#
#   docker build -t slawatch:0.1.0 .
#   docker run --rm slawatch:0.1.0 --help
#
# Dependencies come from requirements.lock (hash-checked; `make lock` regenerates it from
# pyproject.toml with uv). See docs/DEPLOY.md.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

# -- builder: the virtual environment, with every compiled dependency, and slawatch's wheel -------
# (the SLA core compiled with mypyc)
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# A C compiler for mypyc, which compiles the SLA core's hot modules into the wheel (setup.py);
# it stays in this stage. The slim image's own gcc release is what the base image pins.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
RUN python -m venv /opt/slawatch
COPY requirements.lock ./
RUN /opt/slawatch/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml setup.py README.md ./
COPY flows ./flows
COPY infra ./infra
RUN /opt/slawatch/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/slawatch/bin/pip install --no-deps /wheels/slawatch-*.whl \
    && /opt/slawatch/bin/slawatch --help > /dev/null \
    && /opt/slawatch/bin/python -c "from flows.core import native; print(native.describe())"

# -- runtime: the environment and the example configuration, as an unprivileged user -------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="slawatch" \
      org.opencontainers.image.description="Real-time SLA monitor for teams that sell and serve customers over WhatsApp" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.documentation="docs/DEPLOY.md in the source"

RUN groupadd --system --gid 10001 slawatch \
    && useradd --system --uid 10001 --gid slawatch --home-dir /app --shell /usr/sbin/nologin slawatch \
    && mkdir -p /app /var/lib/slawatch \
    && chown slawatch:slawatch /var/lib/slawatch

COPY --from=builder /opt/slawatch /opt/slawatch
COPY --chown=root:root examples /app/examples

ENV PATH="/opt/slawatch/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SLAWATCH_HEALTH_ADDRESS=0.0.0.0:9108 \
    SLAWATCH_INGEST_HOST=0.0.0.0

WORKDIR /app
USER 10001:10001
VOLUME ["/var/lib/slawatch"]
EXPOSE 8787 9108

ENTRYPOINT ["slawatch"]
CMD ["--help"]
