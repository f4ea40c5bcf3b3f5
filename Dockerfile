# syntax=docker/dockerfile:1
# auditmanager-exporter: build a wheel, then install it into a slim runtime image.
#   docker build -t auditmanager-exporter .
#   docker run --rm -p 10118:10118 auditmanager-exporter --demo
#   docker run --rm -p 10118:10118 -v "$PWD/config.yml:/etc/auditmanager-exporter/config.yml:ro" auditmanager-exporter
# With TLS or basic auth, give the web config by AUDITMANAGER_EXPORTER_WEB_CONFIG_FILE (not the flag) so that the
# HEALTHCHECK reads it too; see docs/security.md for its credentials.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- build: the exporter's wheel and the wheels of its dependencies
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- runtime: no compiler, no sources, no wheels left behind
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="auditmanager-exporter" \
      org.opencontainers.image.description="Prometheus exporter for AWS Audit Manager assessment insights" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/auditmanager_exporter-*.whl \
    && groupadd --system --gid 10118 exporter \
    && useradd --system --uid 10118 --gid exporter --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/auditmanager-exporter
USER 10118:10118
EXPOSE 10118
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["auditmanager-exporter", "--healthcheck"]
ENTRYPOINT ["auditmanager-exporter", "--config.file=/etc/auditmanager-exporter/config.yml"]
