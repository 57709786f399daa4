"""Runtime settings: defaults, then a YAML file, then ``MODELPRESS_*`` environment variables, then
explicit arguments (each later source wins)::

    config = RuntimeConfig.load("service.yaml", repository="models/", port=8500)
    config = RuntimeConfig.load(None)      # MODELPRESS_REPOSITORY=models/ MODELPRESS_PORT=9000 ...

Every field can be set from the environment as ``MODELPRESS_<FIELD>`` (``MODELPRESS_MAX_BATCH_SIZE=16``,
``MODELPRESS_TOKENS=tok1,tok2``); ``MODELPRESS_CONFIG`` names the YAML file when none is passed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from modelpress.cpus import usable_cpus
from modelpress.errors import UsageError
from modelpress.layout import NAME_RULE, is_model_name

ENV_PREFIX = "MODELPRESS_"
DEFAULT_THREADS = 4  # request threads where nothing else decides (waitress, batching, an embedded app)
SERVERS = ("auto", "granian", "waitress")


@dataclass
class RuntimeConfig:
    """All service settings, flat. See ``examples/device-service/modelpress.yaml`` for a commented file."""

    repository: str = ""                   # <model>/<version>/ folders, one package, or <version>/ packages
    model_name: str | None = None          # the name of the model when the repository folder holds just one
    host: str = "127.0.0.1"
    port: int = 8500
    threads: int | None = None             # Python threads running requests; default: auto (request_threads)
    workers: int = 1                       # processes sharing the port (each loads its own models)
    server: str = "auto"                   # HTTP server: granian (Rust) when installed, else waitress
    pool_size: int | None = None           # interpreters per model version; default: threads
    interpreter_threads: int | None = None  # default: the device profile's threads
    delegate: str | None = None            # default: the device profile's delegate
    profile: str | None = None             # device profile overriding the packages' own
    poll_interval: float = 2.0             # seconds between repository scans; 0 turns hot reload off
    batching: bool = False
    max_batch_size: int = 32
    max_queue_delay_ms: float = 2.0
    max_queue_size: int = 256
    max_body_bytes: int = 16 * 1024 * 1024
    max_json_depth: int = 32
    tokens: list[str] = field(default_factory=list)
    token_file: str | None = None
    warmup: bool = True
    access_log: bool = True
    unload_timeout: float = 60.0
    model_control: str = "poll"            # poll: serve what the repository holds; explicit: what is loaded
    load_models: list[str] = field(default_factory=list)  # explicit: models loaded at start ("*": all)
    max_memory: str | None = None          # budget for loaded models: bytes (512MiB, 2G) or a share (75%, 0.5)
    load_wait: float = 30.0                # seconds a request waits for an on-demand load, then 503
    drain_timeout: float = 30.0            # seconds SIGTERM waits for in-flight requests before exiting
    # ready with nothing to serve: off by default, since a balancer (KServe, Kubernetes) sends traffic to a ready
    # pod, and one whose /mnt/models is empty or whose every model failed can answer nothing
    allow_empty: bool = False
    # trust (modelpress.signing, runtime/tls.py): PEM public keys / CA certificates a package's signature must
    # verify with (none: signatures are not required), and the HTTPS certificate, key and client CA (mTLS)
    trust_keys: list[str] = field(default_factory=list)
    trust_identities: list[str] = field(default_factory=list)  # certificate signatures: the signers allowed
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    grpc_port: int | None = None           # Open Inference over gRPC on this port too (KServe's: 8081); off if None
    tracing: bool = False                  # OpenTelemetry spans per request, exported per OTEL_* (tracing extra)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> RuntimeConfig:
        """Build a config from defaults, ``path`` (YAML), the environment and ``overrides``."""
        values: dict[str, Any] = {}
        path = path or os.environ.get(ENV_PREFIX + "CONFIG")
        if path:
            values.update(_read_yaml(Path(path)))
        for f in fields(cls):
            raw = os.environ.get(ENV_PREFIX + f.name.upper())
            # an empty variable means "not set", except for tokens: MODELPRESS_TOKENS="" is a token source
            # that holds none, which must stop the start (see check), not turn authentication off
            if raw is not None and (raw != "" or f.name == "tokens"):
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values, where=str(path or "settings"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "settings") -> RuntimeConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UsageError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        config = cls(**{name: _coerce(known[name], value, where) for name, value in data.items()})
        config.check()
        if "tokens" in data and data["tokens"] is not None and not config.tokens:
            raise UsageError(f"{where}: tokens is set ({_shown(data['tokens'])}) but holds no token, which would "
                             "turn authentication off; give at least one token (MODELPRESS_TOKENS=tok1,tok2), "
                             "or remove the setting to serve without authentication")
        return config

    def check(self) -> None:
        for name in ("threads", "workers", "max_batch_size", "max_queue_size", "max_body_bytes", "max_json_depth"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.pool_size is not None and self.pool_size < 1:
            raise UsageError(f"pool_size must be at least 1, got {self.pool_size}")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port must be 0..65535, got {self.port}")
        self._check_grpc()
        if self.server not in SERVERS:
            raise UsageError(f"server {self.server!r} is unknown; use one of {', '.join(SERVERS)}")
        if self.max_queue_delay_ms < 0 or self.poll_interval < 0:
            raise UsageError("max_queue_delay_ms and poll_interval must not be negative")
        if self.model_control not in ("poll", "explicit"):
            raise UsageError(f"model_control {self.model_control!r} must be poll (serve what the repository holds) "
                             "or explicit (only the models loaded through the API or named in load_models)")
        if self.load_wait < 0 or self.drain_timeout < 0:
            raise UsageError("load_wait and drain_timeout must not be negative")
        if self.max_memory is not None:
            from modelpress.runtime.memory import parse_memory

            parse_memory(self.max_memory)
        if self.model_name is not None and not is_model_name(self.model_name):
            raise UsageError(f"model_name {self.model_name!r} is not a valid model name ({NAME_RULE})")

    def _check_grpc(self) -> None:
        if self.grpc_port is None:
            return
        if not 0 <= self.grpc_port <= 65535:
            raise UsageError(f"grpc_port must be 0..65535 (KServe's convention is 8081), got {self.grpc_port}")
        if self.grpc_port and self.grpc_port == self.port:
            raise UsageError(f"grpc_port {self.grpc_port} is the HTTP port too; give gRPC a port of its own (8081)")
        if self.grpc_port == 0 and self.workers > 1:
            raise UsageError(f"grpc_port 0 picks a free port per process, and {self.workers} workers would each "
                             "listen on another one; give a port number (8081) with --workers")

    def request_threads(self, server: str = "waitress") -> int:
        """How many Python threads run requests (and, unless ``pool_size`` says otherwise, how many
        interpreters each model version gets): ``threads`` when set. Auto: under granian, whose Rust side
        reads and writes the sockets, the usable cores, 2 to 4, since each thread past the cores only waits
        for the GIL (fer over v2 JSON at 16 connections on 2 cores: 2 threads answered about 10-20% more than
        4); 4 under waitress, whose threads also do the socket work, and with batching, which merges
        concurrent requests::

            RuntimeConfig(threads=8).request_threads("granian")   # 8
            RuntimeConfig().request_threads("granian")            # 2 on a 2-core machine
        """
        if self.threads is not None:
            return int(self.threads)
        if server != "granian" or self.batching:
            return DEFAULT_THREADS
        return min(DEFAULT_THREADS, max(2, usable_cpus()))

    def all_tokens(self) -> list[str]:
        """The bearer tokens accepted: ``tokens`` plus one a line from ``token_file`` (# comments ignored)."""
        tokens = [t.strip() for t in self.tokens if t.strip()]
        if self.token_file:
            path = Path(self.token_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as err:
                raise UsageError(f"token file {path} cannot be read ({err.strerror}); "
                                 "write one token a line into it") from None
            found = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
            if not found:
                raise UsageError(f"token file {path} holds no token, which would turn authentication off; write "
                                 "one token a line into it, or remove the setting to serve without authentication")
            tokens += found
        return tokens

    def replace(self, **changes: Any) -> RuntimeConfig:
        return dataclasses.replace(self, **changes)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"config file {path} cannot be read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise UsageError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of settings, found {type(data).__name__}")
    return data


def _coerce(f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = str(f.type)
    try:
        if kind.startswith("list"):
            if isinstance(value, str):
                return [part.strip() for part in value.split(",") if part.strip()]
            return [str(v).strip() for v in value if str(v).strip()]
        if value is None:
            return None
        if kind.startswith("bool"):
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return lowered in ("1", "true", "yes", "on")
            return bool(value)
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: setting {f.name} = {value!r} is not a valid {kind}") from None
