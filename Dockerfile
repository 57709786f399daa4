# The modelpress runtime as a container: TFLite (LiteRT) serving over TF Serving REST v1 and Open Inference v2 on
# 8080 and Open Inference over gRPC on 8081 (KServe's ports; MODELPRESS_GRPC_PORT= empty turns gRPC off),
# no TensorFlow. Used as a KServe serving runtime (deploy/kubernetes/kserve/) or a plain Deployment
# (deploy/kubernetes/plain/).
#
#   docker build -t modelpress-runtime .          (or: make image, which builds it with podman)
#   docker run --rm -p 8080:8080 -p 8081:8081 -v "$PWD/models:/mnt/models:ro" modelpress-runtime
#
# /mnt/models may hold <model>/<version>/ folders, one model package, or <version>/ packages of one model
# (name it with MODELPRESS_MODEL_NAME). Every setting of `modelpress serve` is a MODELPRESS_* variable
# (MODELPRESS_MAX_MEMORY=75%, MODELPRESS_TOKENS=..., MODELPRESS_THREADS=8, MODELPRESS_TRUST_KEYS=/etc/modelpress/
# trust/signing-key.pub, MODELPRESS_TLS_CERT=/etc/modelpress/tls/tls.crt, MODELPRESS_TLS_KEY=..., ...).
#
# The image holds the `runtime` and `signing` extras: TFLite packages, signatures verified with --trust-key.
# SavedModel packages need TensorFlow:
#   docker build --build-arg EXTRAS=full,signing -t modelpress-runtime:tensorflow .
# BASE names the Python image both stages start from (a local one where no registry is reachable:
# deploy/podman/base-image.sh builds a Debian bookworm stand-in).

ARG EXTRAS=runtime,signing
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG EXTRAS
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY modelpress ./modelpress
# a virtual environment holding modelpress and its dependencies, copied whole into the final stage: no
# wheel files or build tools reach the image (a wheel folder copied in and deleted later stays in its layer)
RUN python -m venv /opt/modelpress \
    && /opt/modelpress/bin/pip install --no-cache-dir --disable-pip-version-check ".[${EXTRAS}]"

FROM ${BASE}
RUN useradd --uid 1000 --no-create-home --shell /usr/sbin/nologin modelpress \
    && mkdir -p /mnt/models && chown modelpress /mnt/models
COPY --from=build /opt/modelpress /opt/modelpress
ENV PATH=/opt/modelpress/bin:$PATH \
    MODELPRESS_HOST=0.0.0.0 \
    MODELPRESS_PORT=8080 \
    MODELPRESS_GRPC_PORT=8081 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2
USER 1000
EXPOSE 8080 8081
# `modelpress serve` drains in-flight requests on SIGTERM (Kubernetes' stop signal) before it exits
STOPSIGNAL SIGTERM
# liveness over HTTP, or HTTPS when MODELPRESS_TLS_CERT is set (its own certificate: not verified here)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; tls = bool(os.environ.get('MODELPRESS_TLS_CERT')); u.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('MODELPRESS_PORT', '8080') + '/v2/health/live', timeout=2, context=ssl._create_unverified_context() if tls else None)"]
ENTRYPOINT ["modelpress"]
CMD ["serve", "/mnt/models"]
