"""The container and Kubernetes files: KServe resources validated against KServe's own CRD schemas (kept in
``tests/runtime/fixtures/kserve/``, see its README) as ``kubectl apply`` with strict field validation would
(unknown fields are errors), the plain Deployment / Service / HorizontalPodAutoscaler against their APIs'
required fields and against each other, and every probe against the routes the service really answers."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from modelpress.demo.serving import free_port, http_json
from tests.runtime.conftest import PACKAGES, build_repository

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "kserve"
KSERVE_SCHEMA = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "ClusterServingRuntime.v1alpha1.schema.json",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "ServingRuntime.v1alpha1.schema.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "InferenceService.v1beta1.schema.json",
}


@functools.cache
def strict_schema(api_version: str, kind: str) -> dict:
    return strict(json.loads((SCHEMAS / KSERVE_SCHEMA[(api_version, kind)]).read_text()))


def validate(doc: dict, schema: dict) -> None:
    """Validate without checking the schema itself first (KServe's InferenceService schema takes half a
    minute to check against the JSON Schema meta-schema): that check runs once, in the slow run."""
    jsonschema.validators.validator_for(schema)(schema).validate(doc)


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def strict(schema: dict) -> dict:
    """The CRD schema with unknown fields refused wherever it lists the known ones (the API server's
    strict field validation), so that a misspelt field fails here instead of being pruned in a cluster."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def kserve_docs() -> list[tuple[str, dict]]:
    return [(f"{path.name}:{doc['metadata']['name']}", doc) for path in sorted((DEPLOY / "kserve").glob("*.yaml"))
            for doc in documents(path)]


def plain(kind: str) -> dict:
    found = [doc for doc in documents(DEPLOY / "plain" / "modelpress.yaml") if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}"
    return found[0]


def test_the_kserve_schemas_cover_every_kserve_resource():
    assert {(doc["apiVersion"], doc["kind"]) for _, doc in kserve_docs()} <= KSERVE_SCHEMA.keys()
    for name in KSERVE_SCHEMA.values():
        assert (SCHEMAS / name).is_file(), f"{SCHEMAS / name} is missing (see {SCHEMAS / 'README.md'})"
    assert {(doc["apiVersion"], doc["kind"]) for _, doc in kserve_docs()} >= {
        ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"), ("serving.kserve.io/v1beta1", "InferenceService")}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(KSERVE_SCHEMA), ids=[kind for _, kind in sorted(KSERVE_SCHEMA)])
def test_the_strict_schemas_are_valid_json_schemas(key):
    schema = strict_schema(*key)
    jsonschema.validators.validator_for(schema).check_schema(schema)


@pytest.mark.parametrize("name,doc", kserve_docs(), ids=[name for name, _ in kserve_docs()])
def test_kserve_resources_validate_against_the_crd_schemas(name, doc):
    validate(doc, strict_schema(doc["apiVersion"], doc["kind"]))


def test_strict_validation_catches_a_misspelt_field():
    schema = strict_schema("serving.kserve.io/v1alpha1", "ClusterServingRuntime")
    runtime = next(doc for _, doc in kserve_docs() if doc["kind"] == "ClusterServingRuntime")
    broken = copy.deepcopy(runtime)
    broken["spec"]["protocolVersion"] = broken["spec"].pop("protocolVersions")
    with pytest.raises(jsonschema.ValidationError, match="protocolVersion"):
        validate(broken, schema)


def test_serving_runtimes_follow_the_kserve_contract():
    runtimes = [doc for _, doc in kserve_docs() if doc["kind"] == "ClusterServingRuntime"]
    formats = {f["name"] for doc in runtimes for f in doc["spec"]["supportedModelFormats"]}
    assert formats == {"tflite", "tensorflow"}
    for doc in runtimes:
        spec = doc["spec"]
        assert spec["protocolVersions"] == ["v2"]
        (container,) = spec["containers"]
        assert container["name"] == "kserve-container"
        assert container["args"] == ["serve", "/mnt/models"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MODELPRESS_PORT"] == "8080" and env["MODELPRESS_HOST"] == "0.0.0.0"
        assert env["MODELPRESS_GRPC_PORT"] == "8081"  # the gRPC door runs too, on KServe's gRPC port
        assert env["MODELPRESS_MODEL_NAME"] == "{{.Name}}"  # served under the InferenceService's name
        assert [p["containerPort"] for p in container["ports"]] == [8080]  # KServe routes one port: HTTP by default
        assert container["securityContext"]["runAsNonRoot"] is True


def test_inference_service_names_a_runtime_and_format_it_serves():
    runtimes = {doc["metadata"]["name"]: doc for _, doc in kserve_docs() if doc["kind"] == "ClusterServingRuntime"}
    services = [doc for _, doc in kserve_docs() if doc["kind"] == "InferenceService"]
    assert services
    for doc in services:
        model = doc["spec"]["predictor"]["model"]
        runtime = runtimes[model["runtime"]]
        assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
        assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
        assert re.match(r"^(s3|gs|https?|pvc|oci|hdfs|webhdfs)://", model["storageUri"])


def test_an_inference_service_asks_for_grpc_with_the_h2c_port_the_runtime_serves_it_on():
    """KServe routes one port per predictor; the one named h2c (Knative's name for gRPC in clear) on 8081,
    where the runtime's gRPC door listens."""
    runtimes = {doc["metadata"]["name"]: doc for _, doc in kserve_docs() if doc["kind"] == "ClusterServingRuntime"}
    grpc_services = [doc for _, doc in kserve_docs()
                     if doc["kind"] == "InferenceService" and doc["spec"]["predictor"]["model"].get("ports")]
    assert grpc_services, "no InferenceService asks for the gRPC port"
    for doc in grpc_services:
        model = doc["spec"]["predictor"]["model"]
        assert model["ports"] == [{"name": "h2c", "protocol": "TCP", "containerPort": 8081}]
        (container,) = runtimes[model["runtime"]]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert int(env["MODELPRESS_GRPC_PORT"]) == 8081


def test_plain_objects_have_their_apis_required_fields_and_point_at_each_other():
    deployment, service, hpa = plain("Deployment"), plain("Service"), plain("HorizontalPodAutoscaler")
    for doc in (deployment, service, hpa, plain("PersistentVolumeClaim")):
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
    assert deployment["apiVersion"] == "apps/v1"
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()  # apps/v1 requires a matching selector
    containers = spec["template"]["spec"]["containers"]
    assert all(c["name"] and c["image"] for c in containers)
    (container,) = containers
    assert service["apiVersion"] == "v1" and service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        assert port["port"] and port["targetPort"] in ports
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment",
                                                                      deployment["metadata"]["name"])
    assert container["resources"]["requests"]["cpu"]  # a CPU utilization target needs a CPU request
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec["template"]["spec"]["volumes"]]
    assert claims == [plain("PersistentVolumeClaim")["metadata"]["name"]]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["MODELPRESS_PORT"]) == ports["http"] == 8080
    assert int(env["MODELPRESS_GRPC_PORT"]) == ports["grpc"] == 8081
    (grpc_port,) = [p for p in service["spec"]["ports"] if p["targetPort"] == "grpc"]
    assert grpc_port["port"] == 8081 and grpc_port["appProtocol"] == "kubernetes.io/h2c"
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > 5  # room for the preStop pause + drain


def _probes() -> list[tuple[str, dict, int]]:
    """(kind, probe, port) of every probe: an httpGet probe's port by name or number, a grpc probe's number."""
    found = []
    for _, doc in kserve_docs():
        if doc["kind"] == "ClusterServingRuntime":
            for c in doc["spec"]["containers"]:
                found += [(kind, c[kind], {}) for kind in ("livenessProbe", "readinessProbe") if kind in c]
    container = plain("Deployment")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    found += [(kind, container[kind], ports) for kind in ("livenessProbe", "readinessProbe", "startupProbe")]
    return [(kind, probe, named.get(port, port)) for kind, probe, named in found
            for port in [(probe.get("httpGet") or probe["grpc"])["port"]]]


def test_every_probe_asks_a_health_route_the_service_answers(make_app, repo):
    """httpGet probes ask a /v2/health/ route of the HTTP port; grpc probes the gRPC health service of the
    gRPC port, through a real channel to the gRPC door over the same runtime."""
    probes = _probes()
    assert {kind for kind, _, _ in probes} >= {"livenessProbe", "readinessProbe"}
    assert any("grpc" in probe for _, probe, _ in probes), "no probe uses the gRPC health service"
    app = make_app(repo)
    client = app.test_client()
    for kind, probe, port in [p for p in probes if "httpGet" in p[1]]:
        assert port == 8080, kind
        path = probe["httpGet"]["path"]
        assert path.startswith("/v2/health/"), kind
        assert client.get(path).status_code == 200, f"{kind} {path}"
    grpc = pytest.importorskip("grpc")
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from modelpress.runtime.grpc.server import GrpcDoor

    door = GrpcDoor.start(app.modelpress, "127.0.0.1", 0, threads=2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{door.port}") as channel:
            for kind, probe, port in [p for p in probes if "grpc" in p[1]]:
                assert port == 8081, kind
                asked = health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", ""))
                answer = health_pb2_grpc.HealthStub(channel).Check(asked, timeout=30)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, kind
    finally:
        door.stop(grace=1)


def _dockerfile() -> tuple[dict, list[str], str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    command: list[str] = []
    user = ""
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
        elif word in ("ENTRYPOINT", "CMD"):
            command += json.loads(rest)
        elif word == "USER":
            user = rest.strip()
    return env, command, user


def test_dockerfile_runs_serve_on_8080_and_grpc_on_8081_as_a_user_with_only_the_runtime_extra():
    env, command, user = _dockerfile()
    assert command == ["modelpress", "serve", "/mnt/models"]
    assert env["MODELPRESS_PORT"] == "8080" and env["MODELPRESS_HOST"] == "0.0.0.0"
    assert env["MODELPRESS_GRPC_PORT"] == "8081"
    exposed = [line.split()[1:] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("EXPOSE")]
    assert exposed == [["8080", "8081"]]
    assert user and user not in ("0", "root")
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG EXTRAS=runtime" in text and "tensorflow" not in text.split("ARG EXTRAS=runtime")[1].lower()
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ignored[0] == "*" and "!modelpress/" in ignored  # the context holds the package, not data or venvs


# --- the image's entrypoint contract, run as the container would run it ---------------------------------

def _kserve_container() -> dict:
    runtime = next(doc for _, doc in kserve_docs() if doc["metadata"]["name"] == "modelpress-tflite")
    return runtime["spec"]["containers"][0]


def _launch(models: Path, isvc_name: str) -> tuple[subprocess.Popen, str, str]:
    """The image's command line with the image's environment and the one KServe gives the container
    (``{{.Name}}`` filled in as KServe does), ``/mnt/models`` replaced by ``models``; only the host is
    pinned to loopback and the ports to free ones, as tests must. Returns the HTTP and gRPC host:port."""
    image_env, command, _ = _dockerfile()
    container = _kserve_container()
    args = container.get("args") or command[1:]
    argv = [sys.executable, "-m", "modelpress.cli.main", *[str(models) if a == "/mnt/models" else a for a in args]]
    env = {**os.environ, **image_env,
           **{e["name"]: e["value"].replace("{{.Name}}", isvc_name) for e in container.get("env", [])}}
    port, grpc_port = free_port(), free_port()
    while grpc_port == port:
        grpc_port = free_port()
    assert env["MODELPRESS_GRPC_PORT"] == "8081"  # the image starts the gRPC door; moved to a free port here
    env.update(MODELPRESS_HOST="127.0.0.1", MODELPRESS_PORT=str(port), MODELPRESS_GRPC_PORT=str(grpc_port))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError):
            if http_json("GET", url + "/v2/health/ready", timeout=2)[0] == 200:
                return proc, f"127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the entrypoint did not become ready:\n" + (proc.communicate()[0] or ""))


def _layout(root: Path, kind: str) -> Path:
    models = root / "mnt" / "models"
    if kind == "package":           # storageUri pointing at one package folder
        shutil.copytree(PACKAGES / "float32", models)
    elif kind == "versions":        # storageUri pointing at a model folder with version subfolders
        models.mkdir(parents=True)
        shutil.copytree(PACKAGES / "int8", models / "1")
        shutil.copytree(PACKAGES / "float32", models / "2")
    else:                           # a whole repository
        build_repository(models)
    return models


@pytest.mark.parametrize("kind", ["package", "versions", "repository"])
def test_the_image_entrypoint_serves_a_mnt_models_folder(tmp_path, samples, kind):
    tritonclient = pytest.importorskip("tritonclient.http")
    from modelpress.tflite_interpreter import TFLiteModel

    models = _layout(tmp_path, kind)
    proc, hostport, grpc_hostport = _launch(models, isvc_name="digits")
    try:
        client = tritonclient.InferenceServerClient(url=hostport)
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
        meta = client.get_model_metadata("digits")
        assert meta["versions"] == {"package": ["1"], "versions": ["2"], "repository": ["1", "2"]}[kind]
        x, _ = samples
        inp = tritonclient.InferInput("image", list(x[:8].shape), "FP32")
        inp.set_data_from_numpy(x[:8], binary_data=True)
        got = client.infer("digits", [inp]).as_numpy("output_0")
        (want,) = TFLiteModel(PACKAGES / "float32" / "model.tflite").predict([x[:8]])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        client.close()
        grpcclient = pytest.importorskip("tritonclient.grpc")
        with grpcclient.InferenceServerClient(url=grpc_hostport) as over_grpc:  # the gRPC door runs too
            assert over_grpc.is_server_ready() and over_grpc.is_model_ready("digits")
    finally:
        proc.send_signal(signal.SIGTERM)  # what Kubernetes sends: a clean exit, not a kill
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output[-2000:]
