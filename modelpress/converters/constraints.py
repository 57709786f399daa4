"""Check an artifact against its device profile: size, op set, I/O dtypes and activation memory.

    violations = check_constraints(profile, size_bytes=..., graph=read_graph(data), inputs=..., outputs=...)
    raise_on(violations, profile)   # ConstraintError naming the offending ops or the overshoot
"""

from __future__ import annotations

from modelpress.device_profiles import DeviceProfile
from modelpress.errors import ConstraintError
from modelpress.manifest import TensorSpec
from modelpress.tflite_graph import TFLiteGraph


def _kib(n: int) -> str:
    return f"{n:,} bytes ({n / 1024:.1f} KiB)"


def check_constraints(profile: DeviceProfile, size_bytes: int, graph: TFLiteGraph | None,
                      inputs: list[TensorSpec], outputs: list[TensorSpec],
                      io_dtypes: tuple[str, str] | None = None) -> list[str]:
    """A list of human-readable violations; empty when the artifact fits.

    ``io_dtypes`` are the (input, output) dtypes planned for this artifact; by default the profile's.
    """
    want_in, want_out = io_dtypes or (profile.input_dtype, profile.output_dtype)
    problems = []
    if profile.max_artifact_bytes is not None and size_bytes > profile.max_artifact_bytes:
        problems.append(f"artifact is {_kib(size_bytes)}, {_kib(size_bytes - profile.max_artifact_bytes)} over "
                        f"the {_kib(profile.max_artifact_bytes)} budget")
    for kind, specs, want in (("input", inputs, want_in), ("output", outputs, want_out)):
        for spec in specs:
            if spec.dtype != want:
                problems.append(f"{kind} {spec.name!r} is {spec.dtype}; the profile needs {want}")
    if graph is None:
        return problems
    if profile.allowed_ops is not None:
        outside = graph.ops_outside(profile.allowed_ops)
        if outside:
            problems.append(f"ops not supported on {profile.hardware} ({profile.name}): {', '.join(outside)}")
    if graph.custom_ops and profile.op_set != "select_tf_ops":
        problems.append("custom or Flex (select TF) ops that the profile's interpreter lacks: "
                        + ", ".join(dict.fromkeys(graph.custom_ops)))
    if profile.ram_budget_bytes is not None and graph.activation_bytes > profile.ram_budget_bytes:
        problems.append(f"activations need at least {_kib(graph.activation_bytes)}, over the RAM budget of "
                        f"{_kib(profile.ram_budget_bytes)}")
    return problems


def raise_on(problems: list[str], profile: DeviceProfile) -> None:
    if problems:
        raise ConstraintError(f"artifact rejected for profile {profile.name}: " + "; ".join(problems))
