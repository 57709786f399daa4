"""Every Kubernetes object under deploy/kubernetes/ validated offline against Kubernetes' own OpenAPI schemas
(kubernetes-validate, strict: an unknown field is an error), for the oldest and newest release it ships;
the pod templates inside KServe resources too (their containers and volumes are Kubernetes' types, which
KServe's CRD schemas leave open). The trust examples mount the TLS Secret and the signing key where their
settings point."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

from modelpress.runtime.config import ENV_PREFIX, RuntimeConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]  # the oldest supported Kubernetes minor, and now
KSERVE_GROUP = "serving.kserve.io/"


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.relative_to(DEPLOY)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


DOCUMENTS = _documents()
KUBERNETES = [(name, doc) for name, doc in DOCUMENTS if not doc["apiVersion"].startswith(KSERVE_GROUP)]
KSERVE = [(name, doc) for name, doc in DOCUMENTS if doc["apiVersion"].startswith(KSERVE_GROUP)]


def _pod(containers: list[dict], volumes: list[dict] | None = None) -> dict:
    spec = {"containers": containers}
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kserve-predictor"}, "spec": spec}


def _kserve_pod(doc: dict) -> dict:
    """The pod KServe builds from a resource, as far as Kubernetes' own types go."""
    if doc["kind"] in ("ClusterServingRuntime", "ServingRuntime"):
        return _pod(doc["spec"]["containers"], doc["spec"].get("volumes"))
    predictor = doc["spec"]["predictor"]
    model = {k: v for k, v in predictor["model"].items()
             if k not in ("modelFormat", "protocolVersion", "runtime", "storageUri", "storage")}
    return _pod([{"name": "kserve-container", "image": "runtime-image", **model}], predictor.get("volumes"))


def test_the_manifests_are_found():
    assert len(KUBERNETES) >= 6 and len(KSERVE) >= 4, [name for name, _ in DOCUMENTS]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", KUBERNETES, ids=[name for name, _ in KUBERNETES])
def test_kubernetes_objects_validate_against_kubernetes_schemas(name, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", KSERVE, ids=[name for name, _ in KSERVE])
def test_kserve_pod_parts_validate_against_kubernetes_schemas(name, doc, version):
    kubernetes_validate.validate(_kserve_pod(doc), version, strict=True)


@pytest.mark.parametrize("mistake", ["misspelt field", "wrong type", "missing selector"])
def test_the_validation_catches_mistakes(mistake):
    deployment = copy.deepcopy(next(doc for name, doc in KUBERNETES if doc["kind"] == "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    if mistake == "misspelt field":
        container["volumeMount"] = container.pop("volumeMounts")
    elif mistake == "wrong type":
        container["ports"][0]["containerPort"] = "eighty"
    else:
        del deployment["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_grpc_probe_is_checked_too():
    """The plain Deployment's readiness asks the gRPC health service; a grpc probe takes a port number, not
    a port's name as httpGet does, and the validation says so."""
    deployment = copy.deepcopy(next(doc for name, doc in KUBERNETES
                                    if name.startswith("plain/modelpress.yaml") and doc["kind"] == "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["grpc"]["port"] == 8081
    container["readinessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def _env(container: dict) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


def _mounted(container: dict, volumes: list[dict], path: str) -> dict:
    """The volume that holds ``path`` in ``container``."""
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            assert mount.get("readOnly"), f"{mount['mountPath']} should be mounted read-only"
            return next(v for v in volumes if v["name"] == mount["name"])
    raise AssertionError(f"nothing is mounted where {path} lies")


def test_every_modelpress_setting_in_the_manifests_exists():
    known = {ENV_PREFIX + name.upper() for name in RuntimeConfig.__dataclass_fields__}
    for name, doc in DOCUMENTS:
        kserve = doc["apiVersion"].startswith(KSERVE_GROUP)
        pod = _kserve_pod(doc) if kserve else doc.get("spec", {}).get("template", {})
        for container in (pod.get("spec") or {}).get("containers", []):
            unknown = {key for key in _env(container) if key.startswith(ENV_PREFIX)} - known
            assert not unknown, f"{name}: unknown settings {unknown}"


def test_the_tls_example_mounts_the_secret_and_the_trust_key():
    deployment = next(doc for name, doc in KUBERNETES
                      if name.startswith("plain/modelpress-tls.yaml") and doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = _env(container)
    assert _mounted(container, pod["volumes"], env["MODELPRESS_TLS_CERT"])["secret"]["secretName"] == \
        _mounted(container, pod["volumes"], env["MODELPRESS_TLS_KEY"])["secret"]["secretName"]
    assert env["MODELPRESS_TLS_CERT"].endswith("/tls.crt") and env["MODELPRESS_TLS_KEY"].endswith("/tls.key")
    assert "configMap" in _mounted(container, pod["volumes"], env["MODELPRESS_TRUST_KEYS"])
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):  # kubelet must speak TLS to the port
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"


def test_the_signed_inference_service_mounts_the_trust_key():
    service = next(doc for name, doc in KSERVE if name.startswith("kserve/inference-service-signed.yaml"))
    pod = _kserve_pod(service)
    container = pod["spec"]["containers"][0]
    assert "configMap" in _mounted(container, pod["spec"]["volumes"], _env(container)["MODELPRESS_TRUST_KEYS"])


def test_the_manifests_say_how_to_build_and_push_the_image_they_name():
    guide = (DEPLOY / "README.md").read_text()
    assert "make image IMAGE=" in guide and "push" in guide
    for name, doc in DOCUMENTS:
        text = yaml.safe_dump(doc)
        assert "image:" not in text or "README" in (DEPLOY / name.split(":")[0]).read_text(), name
