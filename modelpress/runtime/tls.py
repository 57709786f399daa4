"""HTTPS for the service: certificate checks at start, granian's TLS settings, and rotation without a restart.

TLS needs granian (its Rust side terminates it); waitress has no TLS, so a TLS setting with waitress stops
the start with one line instead of serving in clear::

    files = check_tls(config, "granian")     # None without TLS; a clear UsageError for a wrong file or pair
    Granian(..., **granian_tls(files))

Rotation: granian reads the certificate files when a worker starts and cannot swap them in a running
worker, but it respawns its workers gracefully on SIGHUP (a new worker starts on the shared socket, then the
old one finishes its requests and exits). :class:`CertificateWatcher` runs in the main process, notices that
the certificate, key or client CA changed on disk (cert-manager and Kubernetes Secret updates swap them in
one step), checks that the new pair loads, and sends that SIGHUP: new connections get the new certificate,
requests in flight finish on the old worker. Idle keep-alive connections of the old worker are closed, and
clients reconnect; a connection in the middle of its TLS handshake when the old worker stops is cut (granian
drains requests, not handshakes), before any request on it reached the service. Each new worker loads its
models again before it takes connections. gRPC needs none of this: :func:`grpc_credentials` hands gRPC the
new pair at the next handshake.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from modelpress.errors import UsageError

log = logging.getLogger("modelpress.runtime")


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.cert, self.key, self.client_ca) if p is not None]


def _load(files: TLSFiles) -> None:
    """Raise UsageError unless the certificate and key load as a pair (and the client CA as certificates)."""
    for path in files.paths:
        if not path.is_file():
            raise UsageError(f"TLS file {path} does not exist; pass PEM files to --tls-cert, --tls-key and "
                             "--tls-client-ca (MODELPRESS_TLS_CERT / _KEY / _CLIENT_CA)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(files.cert), str(files.key))
    except (ssl.SSLError, OSError) as err:
        raise UsageError(f"TLS certificate {files.cert} and key {files.key} do not load as a pair ({err}); pass a "
                         "PEM certificate (chain included) and its unencrypted PEM private key") from None
    if files.client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(files.client_ca))
        except (ssl.SSLError, OSError) as err:
            raise UsageError(f"TLS client CA {files.client_ca} is not a PEM CA certificate ({err})") from None


def check_tls(config, server: str) -> TLSFiles | None:
    """The TLS files ``config`` asks for, checked (None when TLS is off)::

        check_tls(RuntimeConfig(tls_cert="tls.crt", tls_key="tls.key"), "granian")   # TLSFiles(...)
        check_tls(RuntimeConfig(tls_cert="tls.crt", tls_key="tls.key"), "waitress")  # UsageError, one line
    """
    cert, key, client_ca = config.tls_cert, config.tls_key, config.tls_client_ca
    if not (cert or key or client_ca):
        return None
    if not (cert and key):
        missing = "--tls-key (MODELPRESS_TLS_KEY)" if cert else "--tls-cert (MODELPRESS_TLS_CERT)"
        raise UsageError(f"TLS needs both a certificate and its key; {missing} is missing"
                         + ("" if cert or key else " (--tls-client-ca asks for mutual TLS, which needs both)"))
    if server != "granian":
        raise UsageError(f"TLS is set but the HTTP server is {server}, which cannot serve HTTPS; install granian "
                         "(pip install granian) and use --server auto or granian, or terminate TLS in front of "
                         "the service; refusing to serve in clear")
    files = TLSFiles(Path(cert), Path(key), Path(client_ca) if client_ca else None)
    _load(files)
    return files


def granian_tls(files: TLSFiles | None) -> dict:
    """granian's keyword arguments for ``files``: HTTPS, and client certificates required when a client CA
    is given (a client without one, or with one from another CA, fails the handshake)."""
    if files is None:
        return {}
    settings = {"ssl_cert": files.cert.resolve(), "ssl_key": files.key.resolve()}
    if files.client_ca is not None:
        settings.update(ssl_ca=files.client_ca.resolve(), ssl_client_verify=True)
    return settings


def _stamp(paths: list[Path]) -> tuple:
    stamps = []
    for path in paths:
        try:
            s = path.stat()  # follows links: a Kubernetes Secret swaps its ..data link
            stamps.append((s.st_ino, s.st_size, s.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


class CertificateWatcher:
    """Polls the TLS files every ``interval`` seconds; when they changed and load as a pair, calls
    ``on_change`` (default: SIGHUP to this process, granian's graceful respawn of its workers)::

        CertificateWatcher(files).start()
    """

    def __init__(self, files: TLSFiles, interval: float = 2.0, on_change=None):
        self.files = files
        self.interval = interval
        self.on_change = on_change or (lambda: os.kill(os.getpid(), signal.SIGHUP))
        self._stop = threading.Event()
        self._seen = _stamp(files.paths)
        self._refused: tuple | None = None

    def start(self) -> CertificateWatcher:
        threading.Thread(target=self._run, name="modelpress-tls-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> bool:
        """One check; True when a change was handed to ``on_change``."""
        stamp = _stamp(self.files.paths)
        if stamp == self._seen:
            return False
        try:
            _load(self.files)
        except UsageError as err:  # half-written, or a key not yet replaced: keep serving the old pair
            if stamp != self._refused:
                log.warning("TLS files changed but do not load yet (%s); serving on with the previous certificate",
                            err)
                self._refused = stamp
            return False
        self._seen = stamp
        log.warning("TLS certificate %s changed on disk: restarting the workers gracefully to serve it",
                    self.files.cert)
        self.on_change()
        return True


def grpc_credentials(files: TLSFiles):
    """gRPC server credentials for ``files`` that follow the files on disk: gRPC asks for the certificate
    configuration at each new connection's handshake, and gets the new pair once it changed and loads (no
    worker restart at all); a client certificate from ``client_ca`` is required when one is given::

        server.add_secure_port("0.0.0.0:8081", grpc_credentials(check_tls(config, "granian")))
    """
    import grpc

    def configuration():
        ca = files.client_ca.read_bytes() if files.client_ca is not None else None
        return grpc.ssl_server_certificate_configuration([(files.key.read_bytes(), files.cert.read_bytes())],
                                                         root_certificates=ca)

    seen = [_stamp(files.paths)]

    def fetch():
        stamp = _stamp(files.paths)
        if stamp == seen[0]:
            return None
        try:
            _load(files)
        except UsageError as err:
            log.warning("TLS files changed but do not load yet (%s); gRPC serves on with the previous certificate",
                        err)
            return None
        seen[0] = stamp
        log.warning("TLS certificate %s changed on disk: new gRPC connections get it", files.cert)
        return configuration()

    return grpc.dynamic_ssl_server_credentials(configuration(), fetch,
                                               require_client_authentication=files.client_ca is not None)
