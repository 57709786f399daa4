# The modelpress runtime as a container: TFLite (LiteRT) serving over TF Serving REST v1 and Open Inference v2,
# no TensorFlow. Used as a KServe serving runtime (deploy/kubernetes/kserve/) or a plain Deployment
# (deploy/kubernetes/plain/).
#
#   docker build -t modelpress-runtime .
#   docker run --rm -p 8080:8080 -v "$PWD/models:/mnt/models:ro" modelpress-runtime
#
# /mnt/models may hold <model>/<version>/ folders, one model package, or <version>/ packages of one model
# (name it with MODELPRESS_MODEL_NAME). Every setting of `modelpress serve` is a MODELPRESS_* variable
# (MODELPRESS_MAX_MEMORY=75%, MODELPRESS_TOKENS=..., MODELPRESS_THREADS=8, ...).
#
# The image holds the `runtime` extra only: TFLite packages. SavedModel packages need TensorFlow:
#   docker build --build-arg EXTRAS=full -t modelpress-runtime:tensorflow .

ARG EXTRAS=runtime

FROM python:3.11-slim AS build
ARG EXTRAS
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY modelpress ./modelpress
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]"

FROM python:3.11-slim
ARG EXTRAS
RUN useradd --uid 1000 --no-create-home --shell /usr/sbin/nologin modelpress \
    && mkdir -p /mnt/models && chown modelpress /mnt/models
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "modelpress[${EXTRAS}]" && rm -rf /wheels
ENV MODELPRESS_HOST=0.0.0.0 \
    MODELPRESS_PORT=8080 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2
USER 1000
EXPOSE 8080
# `modelpress serve` drains in-flight requests on SIGTERM (Kubernetes' stop signal) before it exits
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MODELPRESS_PORT', '8080') + '/v2/health/live', timeout=2)"]
ENTRYPOINT ["modelpress"]
CMD ["serve", "/mnt/models"]
