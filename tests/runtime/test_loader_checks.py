"""The version loader's pre-load checks (the hook a package-signature check plugs into): a check that
raises refuses the version before any backend sees it, and the refusal is the version's FAILED state with
the check's reason, like any other load failure, while the other models serve on."""

from __future__ import annotations

import pytest

from modelpress.errors import ArtifactError, UnavailableError
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.parts import build_parts
from modelpress.runtime.registry import ModelRegistry


@pytest.fixture
def checked(repo, samples):
    seen = []

    def refuse_int8(folder, manifest):
        seen.append((folder.parent.name, folder.name, manifest.model_format))
        if folder.parent.name == "int8":
            raise ArtifactError(f"{folder}: the package's signature does not verify")

    config = RuntimeConfig.load(None, repository=str(repo), poll_interval=0)
    registry = ModelRegistry(config, parts=build_parts(config, checks=[refuse_int8]))
    registry.start()
    yield registry, seen
    registry.stop()


def test_a_refused_version_is_failed_with_the_check_reason(checked, samples):
    registry, seen = checked
    x, _ = samples
    assert ("int8", "1", "tflite") in seen and ("digits", "2", "tflite") in seen
    [row] = registry.status("int8")["int8"]
    assert row["state"] == "FAILED" and "signature does not verify" in row["error"]
    index = {(r["name"], r["version"]): r for r in registry.control.index()}
    assert index[("int8", "1")]["state"] == "UNAVAILABLE"
    assert "signature does not verify" in index[("int8", "1")]["reason"]
    with pytest.raises(UnavailableError, match="model 'int8' has no version available: version 1 failed: .*signature"):
        with registry.acquire("int8"):
            pass
    with registry.acquire("digits") as served:  # the others serve on
        assert served.predict([x[:2]])[0].shape == (2, 10)

