# The production image of itsm-metrics: one image, one process per container, chosen by the
# subcommand (`itsm-metrics migrate|collector|aggregator|api`). No `[local]` extra: in production
# PostgreSQL and Kafka are real services (docker-compose.yml), never embedded engines.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 itsm \
    && useradd --system --uid 10001 --gid itsm --home-dir /app --no-create-home itsm

# Build from a scratch directory so the only copy of the code is the installed package.
# pyproject.toml names README.md as the long description, so it is part of the build.
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY migrations ./migrations
RUN pip install . && rm -rf /tmp/src

WORKDIR /app
# Deploy assets (rules, dashboards) travel with the image for reference.
COPY deploy ./deploy

USER itsm:itsm
EXPOSE 8000
ENTRYPOINT ["itsm-metrics"]
CMD ["--help"]
