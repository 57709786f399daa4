"""``modelpress serve``: argument parsing only; the service is :mod:`modelpress.runtime`."""

from __future__ import annotations

import logging

import click


def trust_options(command):
    """``--trust-key`` and the TLS options (README "Trust")."""
    options = [
        click.option("--trust-key", "trust_keys", multiple=True, type=click.Path(dir_okay=False, path_type=str),
                     help="Serve only packages signed by this key: a PEM public key, or a CA certificate for "
                          "certificate signatures (repeatable; also MODELPRESS_TRUST_KEYS=a.pub,b.pem). A version "
                          "whose signature is missing or fails is never ready; /status says why."),
        click.option("--trust-identity", "trust_identities", multiple=True, metavar="NAME",
                     help="With a CA certificate as --trust-key: accept only signing certificates naming this "
                          "identity (common name, e-mail, DNS or URI; repeatable; MODELPRESS_TRUST_IDENTITIES)."),
        click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=str),
                     help="Serve HTTPS with this certificate (PEM, chain included); also MODELPRESS_TLS_CERT. "
                          "Replaced on disk, it is picked up without a restart. Needs granian."),
        click.option("--tls-key", type=click.Path(dir_okay=False, path_type=str),
                     help="Private key (PEM) of --tls-cert; also MODELPRESS_TLS_KEY."),
        click.option("--tls-client-ca", type=click.Path(dir_okay=False, path_type=str),
                     help="Require client certificates issued by this CA (PEM): mutual TLS; also "
                          "MODELPRESS_TLS_CLIENT_CA."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@click.argument("repository", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=str),
              help="YAML settings file (see examples/device-service/modelpress.yaml); also MODELPRESS_CONFIG.")
@click.option("--model-name", help="Name of the model when REPOSITORY holds one package (or <version>/ packages "
                                    "of one model), as KServe mounts it at /mnt/models; default: the folder's name.")
@click.option("--host", help="Address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default 8500; 0 picks a free one).")
@click.option("--grpc-port", type=click.IntRange(0, 65535),
              help="Also serve the Open Inference Protocol over gRPC on this port (KServe's convention: 8081; "
                   "default: off); also MODELPRESS_GRPC_PORT.")
@click.option("--tracing/--no-tracing", default=None,
              help="OpenTelemetry spans per inference request (decode, queue, invoke, encode), continuing a "
                   "caller's W3C traceparent, exported as the OTEL_* settings say; needs modelpress[tracing].")
@click.option("--workers", type=click.IntRange(1, 64), help="Processes sharing the port (default 1).")
@click.option("--threads", type=click.IntRange(1, 256),
              help="Python threads running requests per process, and interpreters per model (default: "
                   "the cores, 2 to 4, under granian; 4 under waitress or with --batching).")
@click.option("--server", type=click.Choice(["auto", "granian", "waitress"]),
              help="HTTP server (default auto: granian when installed, else waitress).")
@click.option("--profile", metavar="NAME|FILE",
              help="Device profile whose interpreter threads and delegate override the packages' own.")
@click.option("--interpreter-threads", type=click.IntRange(1, 256), help="Threads per interpreter invoke.")
@click.option("--delegate", help="TFLite delegate: none, xnnpack, gpu or edgetpu (a log line says when absent).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=str),
              help="File with bearer tokens (one a line) required on inference and admin routes; "
                   "also MODELPRESS_TOKENS=tok1,tok2.")
@click.option("--batching/--no-batching", default=None, help="Dynamic batching of concurrent requests.")
@click.option("--max-batch-size", type=click.IntRange(1, 4096), help="Rows per merged invoke (default 32).")
@click.option("--max-queue-delay-ms", type=click.FloatRange(0, 1000), help="Longest wait for a batch (default 2).")
@click.option("--poll-interval", type=click.FloatRange(0, 3600), help="Seconds between repository scans (0: off).")
@click.option("--max-body-bytes", type=click.IntRange(1), help="Largest request body accepted (default 16 MiB).")
@click.option("--model-control", type=click.Choice(["poll", "explicit"]),
              help="poll (default): serve every model of the repository; explicit: only those named with "
                   "--load-model or loaded through POST /v2/repository/models/<m>/load.")
@click.option("--load-model", "load_models", multiple=True, metavar="NAME",
              help="With --model-control explicit: a model to load at start (repeatable; '*' for all).")
@click.option("--max-memory", metavar="SIZE|SHARE",
              help="Memory budget for loaded models: bytes (512MiB, 2G) or a share of the machine or container "
                   "(75%, 0.5). Models then load on their first request and idle ones are unloaded, least "
                   "recently used first, to make room.")
@click.option("--load-wait", type=click.FloatRange(0, 3600),
              help="Seconds a request waits for its model to load on demand before a 503 (default 30).")
@click.option("--drain-timeout", type=click.FloatRange(0, 3600),
              help="Seconds SIGTERM waits for in-flight requests before exiting (default 30).")
@click.option("--allow-empty/--no-allow-empty", default=None,
              help="Report ready even when the repository holds no model (default: not ready, with a log line, "
                   "until one is served, so that a balancer sends no traffic to a server that can answer nothing).")
@trust_options
def serve(repository: str | None, config_file: str | None, **options) -> None:
    """Serve the model packages in REPOSITORY over HTTP: <model>/<version>/ folders, or one package (or
    <version>/ packages of one model) served as --model-name.

    Speaks TF Serving REST v1 (/v1/models/...) and Open Inference v2 (/v2/..., and over gRPC with
    --grpc-port), reloads new versions
    while running, and exposes /metrics, /openapi.json and a status page at /. Runs on granian (a Rust
    HTTP server) when it is installed, else on waitress.

    \b
    Examples:
      modelpress serve models/
      modelpress serve models/ --host 0.0.0.0 --port 8500 --threads 8 --token-file tokens.txt
      modelpress serve --config /etc/modelpress/service.yaml
      MODELPRESS_PORT=8080 modelpress serve /mnt/models --model-name digits
      modelpress serve models/ --max-memory 75%
      modelpress serve models/ --model-control explicit --load-model digits
      modelpress serve models/ --trust-key signing-key.pub --tls-cert tls.crt --tls-key tls.key
      modelpress serve models/ --grpc-port 8081
    """
    from modelpress.runtime.config import RuntimeConfig
    from modelpress.runtime.server import serve as run

    root = logging.getLogger()
    if root.level > logging.INFO or root.level == logging.NOTSET:
        logging.getLogger("modelpress.runtime").setLevel(logging.INFO)
    options["load_models"] = list(options["load_models"]) or None  # none given: keep the file's / environment's
    options["trust_keys"] = list(options["trust_keys"]) or None
    options["trust_identities"] = list(options["trust_identities"]) or None
    config = RuntimeConfig.load(config_file, repository=repository, **options)
    run(config)
