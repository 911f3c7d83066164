# syntax=docker/dockerfile:1
# The bot image: `doppel bot discord` / `doppel bot telegram` (and `doppel status`, `doppel chat`).
# Slim on purpose: the core and the two platform libraries, no torch, no model libraries, so it
# builds in a minute and a bot starts in well under a second. Build from the repository root:
#
#   docker build -f deploy/docker/bot.Dockerfile -t doppel/bot:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/doppel
# Dependencies first, from the constraints file alone, so a code change reuses this layer.
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
# Every package listed in pyproject goes in: the CLI imports the training command groups for
# their --help (they import nothing heavy at module level).
COPY doppel doppel
COPY bot bot
COPY inference inference
COPY training training
RUN /opt/doppel/bin/pip install -c requirements/constraints.txt ".[discord,telegram]" \
 && /opt/doppel/bin/pip check

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/doppel doppel
COPY --from=build /opt/doppel /opt/doppel
COPY deploy/doppel.toml /etc/doppel/doppel.toml
ENV PATH=/opt/doppel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DOPPEL_CONFIG=/etc/doppel/doppel.toml \
    DOPPEL_DATA_DIR=/var/lib/doppel
USER doppel
WORKDIR /var/lib/doppel
# Healthy means this deployment's bot heartbeat is in Redis (it stops when the relay client
# stops), not merely that the process exists. Needs DOPPEL_REDIS_URL, as the bot itself does.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["doppel", "status", "--require", "bot", "--self"]
ENTRYPOINT ["doppel"]
CMD ["bot", "check"]
