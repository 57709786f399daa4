"""Signed packages on a real TFLite package: signing and verifying (keys and certificates), every tamper case
named by file and check, `modelpress sign` / `inspect`, and the runtime serving only what verifies, also
after hot reload picked up an edited package. No TensorFlow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("model_signing", reason="signing needs the signing extra (pip install 'modelpress[signing]')")

from modelpress.cli.main import cli  # noqa: E402
from modelpress.errors import ArtifactError, UsageError  # noqa: E402
from modelpress.signing import SIGNATURE_NAME, sign_package, signer_of, trust_check, verify_package  # noqa: E402
from modelpress.testing.pki import CertificateAuthority, signing_key  # noqa: E402

PACKAGES = Path(__file__).resolve().parent / "runtime" / "fixtures" / "packages"


@pytest.fixture
def keys(tmp_path):
    return {"ours": signing_key(tmp_path / "ours"), "theirs": signing_key(tmp_path / "theirs")}


@pytest.fixture
def package(tmp_path, keys) -> Path:
    """The float32 digits package (model.tflite, modelpress.json, labels.txt), signed with our key."""
    folder = shutil.copytree(PACKAGES / "float32", tmp_path / "digits")
    sign_package(folder, keys["ours"][0])
    return folder


def test_a_signed_package_verifies_with_its_public_key(package, keys):
    verdict = verify_package(package, [keys["ours"][1]])
    assert verdict.ok, verdict.reason
    assert verdict.signer.startswith("key sha256:") and verdict.signer == signer_of(package)


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


TAMPERS = {
    "one byte of the model changed": (lambda p: _flip_one_byte(p / "model.tflite"), "model.tflite", "file digests"),
    "a file added": (lambda p: (p / "notes.txt").write_text("added later"), "notes.txt", "file digests"),
    "a file removed": (lambda p: (p / "labels.txt").unlink(), "labels.txt", "file digests"),
    "the manifest edited": (lambda p: (p / "modelpress.json").write_text(
        (p / "modelpress.json").read_text().replace('"digits"', '"digitz"')), "modelpress.json", "file digests"),
    "the signature removed": (lambda p: (p / SIGNATURE_NAME).unlink(), SIGNATURE_NAME, "signature present"),
    "the signature corrupted": (lambda p: (p / SIGNATURE_NAME).write_text("{}"), SIGNATURE_NAME, "signature format"),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_every_tamper_fails_naming_the_file_and_the_check(package, keys, case):
    tamper, file, check = TAMPERS[case]
    tamper(package)
    verdict = verify_package(package, [keys["ours"][1]])
    assert not verdict.ok
    assert (verdict.file, verdict.check) == (file, check)
    assert verdict.reason.startswith(f"{file}: {check}:")


def test_a_package_signed_by_another_key_is_untrusted(package, keys):
    verdict = verify_package(package, [keys["theirs"][1]])
    assert not verdict.ok and verdict.check == "signer trusted"
    assert "none of the trusted keys" in verdict.reason and "theirs.pub" in verdict.reason
    # trusting both keys accepts it: the signature names which one to use
    assert verify_package(package, [keys["theirs"][1], keys["ours"][1]]).ok


def test_a_signature_forged_over_another_key_fails(package, keys, tmp_path):
    """A package re-signed by someone else, with our key's fingerprint pasted in, fails the signature check."""
    ours = json.loads((package / SIGNATURE_NAME).read_text())
    sign_package(package, keys["theirs"][0])
    forged = json.loads((package / SIGNATURE_NAME).read_text())
    forged["verificationMaterial"]["publicKey"] = ours["verificationMaterial"]["publicKey"]
    (package / SIGNATURE_NAME).write_text(json.dumps(forged))
    verdict = verify_package(package, [keys["ours"][1]])
    assert not verdict.ok and verdict.check == "signature", verdict.reason


def test_certificate_signatures_verify_against_the_ca_and_fail_against_another(tmp_path):
    folder = shutil.copytree(PACKAGES / "float32", tmp_path / "digits")
    ca, other = CertificateAuthority("release CA"), CertificateAuthority("someone else's CA")
    cert, key = ca.issue(tmp_path / "release", "release-signer", usage="code")
    sign_package(folder, key, certificate=cert, chain=[ca.write(tmp_path / "ca.crt")])
    assert signer_of(folder) == "certificate CN=release-signer"
    verdict = verify_package(folder, [tmp_path / "ca.crt"])
    assert verdict.ok, verdict.reason
    refused = verify_package(folder, [other.write(tmp_path / "other.crt")])
    assert not refused.ok and refused.check == "certificate chain", refused.reason
    _flip_one_byte(folder / "model.tflite")
    assert verify_package(folder, [tmp_path / "ca.crt"]).file == "model.tflite"


def test_an_identity_policy_accepts_only_the_named_signer(tmp_path):
    folder = shutil.copytree(PACKAGES / "float32", tmp_path / "digits")
    ca = CertificateAuthority("release CA")
    cert, key = ca.issue(tmp_path / "release", "release-signer", usage="code")
    sign_package(folder, key, certificate=cert, chain=[ca.write(tmp_path / "ca.crt")])
    assert verify_package(folder, [tmp_path / "ca.crt"], identities=["release-signer"]).ok
    refused = verify_package(folder, [tmp_path / "ca.crt"], identities=["ci@example.com"])
    assert not refused.ok and refused.check == "signer identity"
    assert "release-signer" in refused.reason and "ci@example.com" in refused.reason
    with pytest.raises(ArtifactError, match="signer identity"):
        trust_check([tmp_path / "ca.crt"], ["ci@example.com"])(folder, None)
    with pytest.raises(UsageError, match="no --trust-key"):
        trust_check([], ["ci@example.com"])


def test_a_certificate_signature_with_only_keys_trusted_is_refused(tmp_path, keys):
    folder = shutil.copytree(PACKAGES / "float32", tmp_path / "digits")
    ca = CertificateAuthority("release CA")
    cert, key = ca.issue(tmp_path / "release", "release-signer", usage="code")
    sign_package(folder, key, certificate=cert, chain=[ca.write(tmp_path / "ca.crt")])
    verdict = verify_package(folder, [keys["ours"][1]])
    assert not verdict.ok and verdict.check == "signer trusted" and "no CA certificate" in verdict.reason


def test_wrong_trust_files_are_clear_usage_errors(tmp_path, keys):
    with pytest.raises(UsageError, match="is a private key; trust the public key"):
        trust_check([keys["ours"][0]])
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(UsageError, match="neither a PEM public key nor a PEM CA certificate"):
        trust_check([tmp_path / "junk.pub"])
    with pytest.raises(UsageError, match="cannot be read"):
        trust_check([tmp_path / "missing.pub"])
    assert trust_check([]) is None  # nothing trusted: signatures are not required


def test_trust_check_raises_artifact_error_with_the_reason(package, keys):
    check = trust_check([keys["ours"][1]])
    check(package, None)
    (package / "extra.bin").write_bytes(b"\0")
    with pytest.raises(ArtifactError, match=r"signature check failed: extra.bin: file digests"):
        check(package, None)


# --- the CLI ------------------------------------------------------------------------------------------

def test_sign_and_inspect_through_the_cli(tmp_path, keys):
    folder = shutil.copytree(PACKAGES / "float32", tmp_path / "digits")
    runner = CliRunner()
    result = runner.invoke(cli, ["sign", str(folder), "--key", str(keys["ours"][0])])
    assert result.exit_code == 0, result.output
    assert (folder / SIGNATURE_NAME).is_file() and "signed" in result.output
    shown = runner.invoke(cli, ["inspect", str(folder), "--trust-key", str(keys["ours"][1])])
    assert shown.exit_code == 0, shown.output
    assert "signature     key sha256:" in shown.output and "(verifies)" in shown.output
    as_json = json.loads(runner.invoke(cli, ["inspect", str(folder), "--json"]).output)
    assert as_json["signature"]["signed"] and as_json["signature"]["verifies"] is None
    wrong = runner.invoke(cli, ["inspect", str(folder), "--trust-key", str(keys["theirs"][1])])
    assert "(does NOT verify)" in wrong.output and "signer trusted" in wrong.output


def test_sign_with_a_bad_key_is_one_clear_error(tmp_path, keys):
    folder = shutil.copytree(PACKAGES / "float32", tmp_path / "digits")
    result = CliRunner().invoke(cli, ["sign", str(folder), "--key", str(keys["ours"][1])])  # a public key
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: signing key") and "Traceback" not in result.output
    assert not (folder / SIGNATURE_NAME).exists()


# --- --sign-key on the commands that write packages ----------------------------------------------------

def test_package_sign_key_signs_the_package(tmp_path, keys):
    out = tmp_path / "pkg"
    result = CliRunner().invoke(cli, ["package", str(PACKAGES / "float32" / "model.tflite"), "--out", str(out),
                                      "--sign-key", str(keys["ours"][0])])
    assert result.exit_code == 0, result.output
    assert verify_package(out, [keys["ours"][1]]).ok


def test_deploy_sign_key_publishes_signed_versions(tmp_path, keys):
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["deploy", str(PACKAGES / "float32" / "model.tflite"), "-p", "server-cpu",
                                      "--repo", str(repo), "--name", "digits", "--sign-key", str(keys["ours"][0])])
    assert result.exit_code == 0, result.output
    verdict = verify_package(repo / "digits" / "1", [keys["ours"][1]])
    assert verdict.ok, verdict.reason  # signed in staging: the manifest written for the repository included


def test_a_bad_sign_key_stops_before_any_work(tmp_path, keys):
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["deploy", str(PACKAGES / "float32" / "model.tflite"), "-p", "server-cpu",
                                      "--repo", str(repo), "--sign-key", str(keys["ours"][1])])  # a public key
    assert result.exit_code == 2, result.output
    assert "signing key" in result.output and "not an unencrypted PEM private key" in result.output
    assert not (repo / "model").exists()


@pytest.mark.integration
def test_convert_sign_key_signs_the_converted_package(models, data_dir, tmp_path, keys):
    pytest.importorskip("tensorflow")
    out = tmp_path / "rpi"
    result = CliRunner().invoke(cli, ["convert", str(models["keras3"]), "-p", "server-cpu", "-c",
                                      str(data_dir / "data.npz"), "--out", str(out), "--sign-key",
                                      str(keys["ours"][0])])
    assert result.exit_code == 0, result.output
    assert verify_package(out, [keys["ours"][1]]).ok


def test_without_the_signing_extra_trust_keys_stop_the_start_with_the_install_line(monkeypatch, keys):
    import sys

    monkeypatch.setitem(sys.modules, "model_signing", None)  # as on a device with the runtime extra only
    with pytest.raises(UsageError, match=r"pip install 'modelpress\[signing\]'"):
        trust_check([keys["ours"][1]])
