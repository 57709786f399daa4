"""The runtime serves only packages whose signature verifies (``--trust-key``): unsigned, foreign-key and
edited packages are never ready and say why, in /status and the readiness routes, also after hot reload
picked up an edited package. Real TFLite packages; no TensorFlow."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("model_signing", reason="signing needs the signing extra (pip install 'modelpress[signing]')")

from modelpress.cli.main import cli  # noqa: E402
from modelpress.signing import sign_package  # noqa: E402
from modelpress.testing.pki import signing_key  # noqa: E402
from tests.runtime.conftest import FIXTURES, PACKAGES  # noqa: E402


@pytest.fixture
def keys(tmp_path):
    return {"ours": signing_key(tmp_path / "ours"), "theirs": signing_key(tmp_path / "theirs")}


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# --- the runtime --------------------------------------------------------------------------------------

@pytest.fixture
def trusted_repo(tmp_path, keys) -> Path:
    """digits 1 (signed by us), 2 (unsigned), 3 (signed by another key), 4 (signed by us)."""
    root = tmp_path / "repo"
    for version, key in ((1, "ours"), (2, None), (3, "theirs"), (4, "ours")):
        folder = shutil.copytree(PACKAGES / "float32", root / "digits" / str(version))
        if key:
            sign_package(folder, keys[key][0])
    (root / "digits" / "config.yaml").write_text("version_policy: all\n")
    return root


def _ready(client, version):
    answer = client.get(f"/v2/models/digits/versions/{version}/ready")
    return answer.status_code, answer.get_json()


def test_runtime_serves_only_versions_that_verify(make_app, trusted_repo, keys):
    app = make_app(trusted_repo, trust_keys=[str(keys["ours"][1])])
    client = app.test_client()
    assert _ready(client, 1)[0] == 200 and _ready(client, 4)[0] == 200
    status, body = _ready(client, 2)
    assert status == 503 and "model.sig: signature present" in body["error"]
    status, body = _ready(client, 3)
    assert status == 503 and "signer trusted" in body["error"]
    rows = {row["version"]: row for row in client.get("/status").get_json()["models"]["digits"]["versions"]}
    assert rows[2]["state"] == "FAILED" and "not signed" in rows[2]["error"]
    assert rows[3]["state"] == "FAILED" and "none of the trusted keys" in rows[3]["error"]
    index = {row["version"]: row for row in client.post("/v2/repository/index", json={}).get_json()}
    assert index["2"]["state"] == "UNAVAILABLE" and "model.sig: signature present" in index["2"]["reason"]
    assert index["4"]["state"] == "READY"
    x = np.load(FIXTURES / "x_test.npy")[:2]
    answer = client.post("/v2/models/digits/versions/4/infer", json={"inputs": [
        {"name": "image", "shape": [2, 8, 8, 1], "datatype": "FP32", "data": x.ravel().tolist()}]})
    assert answer.status_code == 200, answer.get_json()


def test_without_trust_keys_unsigned_packages_load_as_before(make_app, trusted_repo):
    client = make_app(trusted_repo).test_client()
    assert all(_ready(client, v)[0] == 200 for v in (1, 2, 3, 4))


def test_a_package_edited_after_loading_is_refused_on_hot_reload(make_app, trusted_repo, keys):
    app = make_app(trusted_repo, trust_keys=[str(keys["ours"][1])])
    client = app.test_client()
    assert _ready(client, 4)[0] == 200
    _flip_one_byte(trusted_repo / "digits" / "4" / "model.tflite")
    app.modelpress.registry.scan()  # what the poller does every poll_interval
    status, body = _ready(client, 4)
    assert status == 503, body
    assert "model.tflite: file digests" in body["error"]
    rows = {row["version"]: row for row in client.get("/status").get_json()["models"]["digits"]["versions"]}
    assert rows[4]["state"] == "FAILED" and "model.tflite" in rows[4]["error"]
    assert _ready(client, 1)[0] == 200  # the other signed version keeps serving
    sign_package(trusted_repo / "digits" / "4", keys["ours"][0])  # the publisher signs the new bytes
    app.modelpress.registry.scan()
    assert _ready(client, 4)[0] == 200


def test_serve_refuses_to_start_with_an_unreadable_trust_key(tmp_path, trusted_repo):
    result = CliRunner().invoke(cli, ["serve", str(trusted_repo), "--trust-key", str(tmp_path / "nope.pub"),
                                      "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "trusted key" in result.output and "cannot be read" in result.output


def test_serve_with_trust_keys_from_the_environment(start_server, trusted_repo, keys):
    """The real `modelpress serve` process, trust key from MODELPRESS_TRUST_KEYS."""
    import requests

    server = start_server(trusted_repo, "--poll-interval", "0", env={"MODELPRESS_TRUST_KEYS": str(keys["ours"][1])})
    assert requests.get(server.url + "/v2/models/digits/versions/4/ready", timeout=10).status_code == 200
    refused = requests.get(server.url + "/v2/models/digits/versions/3/ready", timeout=10)
    assert refused.status_code == 503 and "signer trusted" in refused.json()["error"]
