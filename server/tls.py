"""TLS for the server, with certificates that follow their files on disk.

`server_credentials(config)` gives gRPC dynamic SSL credentials: gRPC asks
`CertificateFiles.fetch` for the configuration at every new handshake, and
fetch answers None (keep the current one) unless one of the files changed
since it last looked (inode, size, mtime or ctime: a rename into place, as
cert-manager and kubelet do it, or a rewrite). Changed files are read and
checked; a good set is handed to gRPC and used by the handshakes from then on,
while connections already open, and their streams, go on with the
certificate they started with. A set that does not load (missing, not PEM, a
key of another certificate, half-way through being replaced) keeps the one
before and logs one warning, until the files change again.

The checks use the ssl module on the files themselves, before gRPC sees
them, so that a bad file is one line at start (ConfigError) instead of
failed handshakes later: the certificate chain and the CA file must hold PEM
certificates, and the key must be the certificate's, unencrypted (gRPC takes
no passphrase). The bytes handed to gRPC are the bytes checked: files are
read before and after the check, and a set that changed in between waits for
the next handshake.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from .config import ConfigError, ServerConfig

log = logging.getLogger("trialplane.server.tls")


class TlsError(ConfigError):
    """A TLS file that cannot be served; the message is one line naming it."""


@dataclass(frozen=True)
class Material:
    cert_chain: bytes
    key: bytes
    client_ca: bytes | None

    def configuration(self):
        return grpc.ssl_server_certificate_configuration([(self.key, self.cert_chain)], self.client_ca)


def _read(what: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def _no_passphrase() -> bytes:
    raise TlsError("encrypted")


def _check_certificates(what: str, path: str, data: bytes) -> None:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise TlsError(f"the {what} {path} is not PEM: it holds no '-----BEGIN CERTIFICATE-----' block")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii", "replace"))
    except ssl.SSLError as exc:
        raise TlsError(f"the {what} {path} holds a certificate that does not parse ({exc.reason or exc.args[-1]})") from None


def _check_key(cert_path: str, key_path: str, key: bytes) -> None:
    if b"ENCRYPTED" in key:
        raise TlsError(f"the TLS key {key_path} is encrypted; gRPC needs it unencrypted (e.g. openssl pkey -in KEY -out PLAIN)")
    if b"PRIVATE KEY-----" not in key:
        raise TlsError(f"the TLS key {key_path} is not PEM: it holds no '-----BEGIN ... PRIVATE KEY-----' block")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path, password=_no_passphrase)
    except TlsError:
        raise TlsError(f"the TLS key {key_path} is encrypted; gRPC needs it unencrypted") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsError(f"the TLS key {key_path} is not the key of the certificate in {cert_path}") from None
        raise TlsError(f"the TLS key {key_path} does not load ({exc.reason or exc.args[-1]})") from None
    except OSError as exc:
        raise TlsError(f"cannot read the TLS key {key_path}: {exc.strerror or exc}") from None


def _paths_problem(config: ServerConfig) -> str | None:
    if config.tls_cert and not config.tls_key:
        return "--tls-cert needs --tls-key, the certificate's private key"
    if config.tls_key and not config.tls_cert:
        return "--tls-key needs --tls-cert, the certificate it is the key of"
    if config.tls_client_ca and not config.tls:
        return "--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked over TLS only"
    return None


class CertificateFiles:
    """The server's certificate, key and client CA files, as last loaded."""

    def __init__(self, cert: str, key: str, client_ca: str | None = None):
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._lock = threading.Lock()
        self._seen = self._signature()
        self.current = self.load()

    def _paths(self) -> list[str]:
        return [p for p in (self.cert, self.key, self.client_ca) if p]

    def _signature(self) -> tuple:
        marks: list = []
        for path in self._paths():
            try:
                st = os.stat(path)
                marks.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            except OSError as exc:
                marks.append(exc.errno)
        return tuple(marks)

    def _read_all(self) -> Material:
        return Material(
            _read("TLS certificate", self.cert), _read("TLS key", self.key),
            _read("TLS client CA", self.client_ca) if self.client_ca else None,
        )

    def load(self) -> Material:
        """The files' contents, checked; TlsError naming the file that is wrong."""
        material = self._read_all()
        _check_certificates("TLS certificate", self.cert, material.cert_chain)
        _check_key(self.cert, self.key, material.key)
        if self.client_ca and material.client_ca is not None:
            _check_certificates("TLS client CA", self.client_ca, material.client_ca)
        if self._read_all() != material:
            raise TlsError(f"the TLS files changed while they were read ({', '.join(self._paths())})")
        return material

    def fetch(self):
        """gRPC's certificate-configuration fetcher: None keeps the current
        configuration, a new one is used by the handshakes that follow."""
        try:
            with self._lock:
                signature = self._signature()
                if signature == self._seen:
                    return None
                try:
                    material = self.load()
                except TlsError as exc:
                    self._seen = signature
                    log.warning("TLS certificate not reloaded, the one loaded before stays in use: %s", exc)
                    return None
                self._seen = signature
                if material == self.current:
                    return None
                self.current = material
                log.info("TLS certificate reloaded from %s", self.cert)
                return material.configuration()
        except Exception:  # gRPC core would only print a bare traceback and fail the handshake
            log.exception("TLS certificate reload failed; the one loaded before stays in use")
            return None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.current.configuration(), self.fetch, require_client_authentication=self.client_ca is not None)


def certificate_files(config: ServerConfig) -> CertificateFiles | None:
    """The loaded files of a TLS config, None for plaintext; TlsError as check()."""
    problem = _paths_problem(config)
    if problem:
        raise TlsError(problem)
    if not config.tls:
        return None
    return CertificateFiles(config.tls_cert or "", config.tls_key or "", config.tls_client_ca)


def check(config: ServerConfig) -> None:
    """TlsError when the TLS settings or files would not serve."""
    certificate_files(config)
