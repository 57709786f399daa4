"""Signed model packages: the converters sign, the runtime verifies, both through this module (no TensorFlow).

A package is signed with the OpenSSF ``model-signing`` library: every file of the folder is hashed (SHA-256)
and the list of digests is signed into ``model.sig``, a Sigstore bundle kept inside the package. Two offline
kinds are supported: an elliptic-curve private key (PEM; trusted through its public key) and a signing
certificate with its chain (trusted through a CA certificate)::

    sign_package("artifacts/rpi", key="signing-key.pem")                     # writes artifacts/rpi/model.sig
    verdict = verify_package("artifacts/rpi", trusted=["signing-key.pub"])
    verdict.ok, verdict.reason      # (True, "signed by key sha256:3f2a...; every file verifies")

    verify_package("artifacts/rpi", trusted=["team-ca.pem"])  # certificate signatures: a CA certificate

A verdict that fails names the file and the check (``signature present``, ``signature format``,
``signer trusted``, ``certificate chain``, ``signature``, ``file digests``). Sigstore keyless signing
(an OIDC identity and the public transparency log) needs the internet and is not wrapped here: use
``model_signing``'s own command and verify with its Sigstore verifier.

Install with ``pip install modelpress[signing]``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelpress.errors import ArtifactError, UsageError

SIGNATURE_NAME = "model.sig"
INSTALL_HINT = "pip install 'modelpress[signing]' (model-signing and pyopenssl)"


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one package: ``ok``, who signed it, and on failure the check that failed and
    the file it concerns."""

    ok: bool
    reason: str
    signer: str | None = None
    check: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class TrustAnchor:
    """One trusted party read from a PEM file: a public key (key signatures) or a CA certificate
    (certificate signatures)."""

    path: Path
    kind: str            # "key" or "certificate"
    fingerprint: str     # the key's SHA-256 as model-signing records it, or the certificate's subject


def _library():
    try:
        from model_signing import hashing, signing, verifying
    except ImportError as err:
        raise UsageError(f"signing needs the model-signing library, which does not import here ({err}); "
                         f"install it with {INSTALL_HINT}") from None
    return hashing, signing, verifying


def _hashing_config(hashing):
    # every file counts, git's files too (the library skips them by default); the signature itself does not
    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_NAME], ignore_git_paths=False)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise UsageError(f"{what} {path} cannot be read ({err.strerror}); pass a PEM file") from None


def key_fingerprint(public_pem: bytes) -> str:
    """The SHA-256 of a PEM public key, as ``model-signing`` records it in a key signature::

        key_fingerprint(Path("signing-key.pub").read_bytes())   # "3f2a..."
    """
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem)
    canonical = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(canonical).hexdigest()


def read_anchor(path: str | Path) -> TrustAnchor:
    """A trusted public key or CA certificate from a PEM file, with a clear error for anything else::

        read_anchor("signing-key.pub").kind    # "key"
    """
    path = Path(path)
    data = _read(path, "trusted key")
    from cryptography import x509

    if b"BEGIN CERTIFICATE" in data:
        try:
            certificate = x509.load_pem_x509_certificates(data)[0]
        except ValueError as err:
            raise UsageError(f"trusted certificate {path} is not a valid PEM certificate ({err})") from None
        return TrustAnchor(path, "certificate", certificate.subject.rfc4514_string())
    if b"PRIVATE KEY" in data:
        raise UsageError(f"trusted key {path} is a private key; trust the public key instead (openssl ec -in "
                         f"{path.name} -pubout) and keep the private key on the signing machine")
    try:
        return TrustAnchor(path, "key", key_fingerprint(data))
    except (ValueError, TypeError) as err:
        raise UsageError(f"trusted key {path} is neither a PEM public key nor a PEM CA certificate ({err})") from None


def sign_package(folder: str | Path, key: str | Path, certificate: str | Path | None = None,
                 chain: Iterable[str | Path] = ()) -> Path:
    """Sign every file of a package folder with a private key (PEM, elliptic curve), or with a signing
    certificate and its chain; writes ``model.sig`` into the folder (replacing an older one)::

        sign_package("artifacts/rpi", key="signing-key.pem")
        sign_package("artifacts/rpi", key="leaf.key", certificate="leaf.pem", chain=["ca.pem"])
    """
    folder, key = Path(folder), Path(key)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a package folder; pass the folder that holds modelpress.json")
    _read(key, "signing key")
    hashing, signing, _ = _library()
    config = signing.Config().set_hashing_config(_hashing_config(hashing))
    try:
        if certificate is not None:
            config.use_certificate_signer(private_key=key, signing_certificate=Path(certificate),
                                          certificate_chain=[Path(c) for c in chain])
        else:
            config.use_elliptic_key_signer(private_key=key)
    except (ValueError, TypeError) as err:
        raise UsageError(f"signing key {key} cannot sign: {err}; pass an unencrypted PEM elliptic-curve private "
                         "key (P-256, P-384 or P-521), e.g. openssl ecparam -name prime256v1 -genkey -noout") from None
    target = folder / SIGNATURE_NAME
    partial = folder.parent / f".{folder.name}.{os.getpid()}.sig"  # outside the folder: not hashed, not seen
    try:
        config.sign(folder, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def signer_of(folder: str | Path) -> str | None:
    """Who a package's signature names, read without verifying it (None when unsigned)::

        signer_of("artifacts/rpi")     # "key sha256:3f2a..." or "certificate CN=release,O=Example"
    """
    path = Path(folder) / SIGNATURE_NAME
    if not path.is_file():
        return None
    try:
        material = json.loads(path.read_bytes())["verificationMaterial"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable signature"
    if "x509CertificateChain" in material:
        certificate = _leaf(material)
        return "certificate " + certificate.subject.rfc4514_string() if certificate else "unreadable certificate"
    hint = (material.get("publicKey") or {}).get("hint")
    return f"key sha256:{hint}" if hint else "unknown key"


def _leaf(material: dict):
    """The signing certificate of a certificate signature's verification material, or None."""
    from cryptography import x509

    try:
        raw = material["x509CertificateChain"]["certificates"][0]["rawBytes"]
        return x509.load_der_x509_certificate(base64.b64decode(raw))
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def certificate_identities(folder: str | Path) -> list[str]:
    """The identities a certificate signature's signing certificate names: its common name(s) and subject
    alternative names (e-mail, DNS, URI); empty for key signatures::

        certificate_identities("artifacts/rpi")    # ["release-signer", "release@example.com"]
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        certificate = _leaf(json.loads((Path(folder) / SIGNATURE_NAME).read_bytes())["verificationMaterial"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if certificate is None:
        return []
    names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        alternatives = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [str(v) for kind in (x509.RFC822Name, x509.DNSName, x509.UniformResourceIdentifier)
                  for v in alternatives.get_values_for_type(kind)]
    except x509.ExtensionNotFound:
        pass
    return names


def verify_package(folder: str | Path, trusted: Sequence[str | Path | TrustAnchor],
                   identities: Sequence[str] = ()) -> Verdict:
    """Check a package's signature against trusted public keys / CA certificates (PEM files): the signature
    is there and readable, made by a trusted key (or a certificate chaining to a trusted CA, and naming one
    of ``identities`` when some are given), and covers every file of the folder with its digest, no file
    more and none less::

        verdict = verify_package("artifacts/rpi", trusted=["signing-key.pub"])
        if not verdict.ok:
            print(verdict.reason)   # "model.tflite: file digests: its SHA-256 differs from the signed one ..."
        verify_package("artifacts/rpi", ["team-ca.pem"], identities=["release@example.com"])
    """
    folder = Path(folder)
    anchors = [a if isinstance(a, TrustAnchor) else read_anchor(a) for a in trusted]
    if not anchors:
        raise UsageError("verify_package needs at least one trusted public key or CA certificate")
    signature = folder / SIGNATURE_NAME
    if not signature.is_file():
        return Verdict(False, f"{SIGNATURE_NAME}: signature present: the package is not signed; sign it with "
                              "`modelpress sign PACKAGE --key KEY`", check="signature present", file=SIGNATURE_NAME)
    signer = signer_of(folder)
    if signer is None or signer.startswith(("unreadable", "unknown")):
        return Verdict(False, f"{SIGNATURE_NAME}: signature format: not a model-signing bundle ({signer}); "
                              "sign the package again", signer=signer, check="signature format", file=SIGNATURE_NAME)
    if signer.startswith("key "):
        candidates = [a for a in anchors if a.kind == "key" and f"key sha256:{a.fingerprint}" == signer]
        if not candidates:
            known = ", ".join(f"{a.path.name} (sha256:{a.fingerprint[:12]}...)" for a in anchors if a.kind == "key")
            return Verdict(False, f"{SIGNATURE_NAME}: signer trusted: signed by {signer[:23]}..., which is none of "
                                  f"the trusted keys ({known or 'no public key is trusted'})",
                           signer=signer, check="signer trusted", file=SIGNATURE_NAME)
    else:
        candidates = [a for a in anchors if a.kind == "certificate"]
        if not candidates:
            return Verdict(False, f"{SIGNATURE_NAME}: signer trusted: signed with a certificate ({signer}) but no "
                                  "CA certificate is trusted", signer=signer, check="signer trusted",
                           file=SIGNATURE_NAME)
        named = certificate_identities(folder)
        if identities and not set(named) & set(identities):
            return Verdict(False, f"{SIGNATURE_NAME}: signer identity: signed by {signer} (names: "
                                  f"{', '.join(named) or 'none'}), which is none of the allowed identities "
                                  f"({', '.join(identities)})", signer=signer, check="signer identity",
                           file=SIGNATURE_NAME)
    return _verify_with(folder, signature, candidates, signer)


def _verify_with(folder: Path, signature: Path, anchors: list[TrustAnchor], signer: str) -> Verdict:
    hashing, _, verifying = _library()
    config = verifying.Config().set_hashing_config(_hashing_config(hashing))
    if anchors[0].kind == "key":
        config.use_elliptic_key_verifier(public_key=anchors[0].path)
    else:
        config.use_certificate_verifier(certificate_chain=[a.path for a in anchors])
    try:
        config.verify(folder, signature)
    except Exception as err:  # the library raises ValueError, OpenSSL and cryptography errors alike
        return _failure(err, signer)
    return Verdict(True, f"signed by {signer}; every file verifies", signer=signer)


_MISMATCH = re.compile(r"Hash mismatch for '([^']+)'")
_EXTRA = re.compile(r"Extra files found in model '[^']*': ([^\]\"]+)")
_MISSING = re.compile(r"Missing files in model '[^']*': ([^\]\"]+)")


def _failure(err: Exception, signer: str) -> Verdict:
    text = str(err)
    kind = type(err).__name__
    if m := _MISMATCH.search(text):
        name = m.group(1)
        return Verdict(False, f"{name}: file digests: its SHA-256 differs from the signed one (the file changed "
                              "after signing)", signer=signer, check="file digests", file=name)
    if m := _EXTRA.search(text):
        name = m.group(1).split("'")[0].strip().rstrip(",")
        return Verdict(False, f"{name}: file digests: the file is not covered by the signature (added after "
                              "signing); remove it or sign the package again", signer=signer, check="file digests",
                       file=name)
    if m := _MISSING.search(text):
        name = m.group(1).split("'")[0].strip().rstrip(",")
        return Verdict(False, f"{name}: file digests: the signature covers this file but it is missing",
                       signer=signer, check="file digests", file=name)
    if kind in ("X509StoreContextError",) or "certificate" in text.lower():
        return Verdict(False, f"{SIGNATURE_NAME}: certificate chain: {signer} does not chain to a trusted CA "
                              f"({text[:160]})", signer=signer, check="certificate chain", file=SIGNATURE_NAME)
    return Verdict(False, f"{SIGNATURE_NAME}: signature: does not verify with the trusted key ({kind}: "
                          f"{text[:160] or 'invalid signature'})", signer=signer, check="signature",
                   file=SIGNATURE_NAME)


def trust_check(trusted: Sequence[str | Path], identities: Sequence[str] = ()):
    """The runtime's check for one version folder, ``check(folder, manifest) -> None``, raising
    ``ArtifactError`` with the verdict's reason when the package does not verify (None when nothing is
    trusted: signatures are then not required). The trusted files are read once, here, so that a wrong
    path stops the start with a clear error::

        check = trust_check(["signing-key.pub"])
        check(Path("models/digits/3"), manifest)    # ArtifactError("model.tflite: file digests: ...")
    """
    if not trusted:
        if identities:
            raise UsageError("trust_identities names allowed signers but no --trust-key (a CA certificate) says "
                             "whom to trust; add the CA that issues their certificates")
        return None
    anchors = [read_anchor(path) for path in trusted]
    _library()  # a missing library stops the start, not every load

    def check(folder: Path, manifest=None) -> None:  # noqa: ARG001 - the manifest is part of the loader's hook
        verdict = verify_package(folder, anchors, identities)
        if not verdict.ok:
            raise ArtifactError(f"signature check failed: {verdict.reason}")

    return check


def signature_summary(folder: str | Path, trusted: Sequence[str | Path] = ()) -> dict:
    """What ``modelpress inspect`` shows about a package's signature: whether it is signed, by whom, and,
    when trusted keys / CA certificates are given, whether it verifies and why not::

        signature_summary("artifacts/rpi", ["signing-key.pub"])
        # {"signed": True, "signer": "key sha256:3f2a...", "verifies": True, "reason": "signed by ..."}
    """
    signer = signer_of(folder)
    if signer is None:
        return {"signed": False, "signer": None, "verifies": False if trusted else None,
                "reason": f"not signed (no {SIGNATURE_NAME}); sign it with `modelpress sign PACKAGE --key KEY`"}
    if not trusted:
        return {"signed": True, "signer": signer, "verifies": None,
                "reason": "pass --trust-key PUB (a public key or CA certificate) to verify it"}
    verdict = verify_package(folder, trusted)
    return {"signed": True, "signer": signer, "verifies": verdict.ok, "reason": verdict.reason,
            "check": verdict.check, "file": verdict.file}


def check_signing_key(key: str | Path | None) -> Path | None:
    """Fail fast, before a long conversion or search, when a ``--sign-key`` cannot sign: unreadable, not an
    unencrypted elliptic-curve private key, or the library missing (None passes through)::

        check_signing_key("signing-key.pem")     # Path("signing-key.pem")
    """
    if key is None:
        return None
    key = Path(key)
    data = _read(key, "signing key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise UsageError(f"signing key {key} is not an unencrypted PEM private key ({err}); make one with openssl "
                         "ecparam -name prime256v1 -genkey -noout -out signing-key.pem") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise UsageError(f"signing key {key} is a {type(private).__name__.lstrip('_')}; model signing needs an "
                         "elliptic-curve key (P-256, P-384 or P-521)")
    _library()
    return key
