"""DeviceProfile: what a target device demands of an artifact.

Profiles are plain data, loaded from YAML and serialised back with ``get_config`` / ``from_config``::

    from modelpress.device_profiles import load_profile
    rpi = load_profile("raspberry-pi-4")
    rpi.quantization          # 'int8'
    rpi.get_config()          # a dict that from_config (or a YAML file) turns back into the profile
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from modelpress.errors import ProfileError

HARDWARE = ("cpu", "gpu", "edgetpu", "mcu", "npu")
FORMATS = ("tflite", "saved_model")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8", "int16x8", "int4")
#: who quantizes: LiteRT's quantizer on the float32 flatbuffer, or the TFLite converter itself
QUANTIZERS = ("litert", "converter")
IO_DTYPES = ("float32", "float16", "int8", "uint8", "int16")
OP_SETS = ("builtins", "int8_builtins", "select_tf_ops")
DELEGATES = ("none", "xnnpack", "gpu", "edgetpu", "nnapi", "coreml")
#: Arm Ethos-U NPU configurations Vela compiles for (``vela --accelerator-config``)
NPUS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512")


def _choice(name: str, value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ProfileError(f"{where}: field '{name}' is {value!r}; allowed values: {', '.join(allowed)}")
    return value


def _positive_int(name: str, value: Any, where: str, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ProfileError(f"{where}: field '{name}' is {value!r}; expected a positive integer" +
                           (" or null" if optional else ""))
    return value


@dataclass
class DeviceProfile:
    """A target device. ``formats[0]`` is the artifact built by default."""

    name: str
    description: str = ""
    hardware: str = "cpu"
    formats: list[str] = field(default_factory=lambda: ["tflite"])
    quantization: str = "none"
    input_dtype: str = "float32"
    output_dtype: str = "float32"
    op_set: str = "builtins"
    allowed_ops: list[str] | None = None
    max_artifact_bytes: int | None = None
    ram_budget_bytes: int | None = None
    threads: int = 1
    delegate: str = "none"
    compiler: str | None = None
    min_top1_agreement: float = 0.95
    #: an absolute bound on any output's max |err| against the source (output units)
    max_abs_error: float | None = None
    #: a bound on each output's max |err| as a fraction of that output's range over the verification
    #: samples: the float32 criterion, which holds for outputs of any scale (see converters.verify)
    max_relative_error: float | None = None
    npu: str | None = None
    npu_system_config: str | None = None
    npu_memory_mode: str | None = None
    clock_hz: int | None = None
    macs_per_cycle: float | None = None
    micro_max_lsb: int = 1
    #: None: LiteRT's quantizer where it serves the device (see quantizes_with); or force one of QUANTIZERS
    quantizer: str | None = None
    source: str = "user"

    def __post_init__(self) -> None:
        where = f"profile {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ProfileError("profile: field 'name' must be a non-empty string")
        _choice("hardware", self.hardware, HARDWARE, where)
        if not isinstance(self.formats, list) or not self.formats:
            raise ProfileError(f"{where}: field 'formats' is {self.formats!r}; expected a non-empty list "
                               f"of: {', '.join(FORMATS)}")
        for fmt in self.formats:
            _choice("formats", fmt, FORMATS, where)
        _choice("quantization", self.quantization, QUANTIZATIONS, where)
        _choice("input_dtype", self.input_dtype, IO_DTYPES, where)
        _choice("output_dtype", self.output_dtype, IO_DTYPES, where)
        _choice("op_set", self.op_set, OP_SETS, where)
        _choice("delegate", self.delegate, DELEGATES, where)
        _positive_int("max_artifact_bytes", self.max_artifact_bytes, where)
        _positive_int("ram_budget_bytes", self.ram_budget_bytes, where)
        _positive_int("threads", self.threads, where, optional=False)
        if self.allowed_ops is not None and (
            not isinstance(self.allowed_ops, list) or not all(isinstance(o, str) for o in self.allowed_ops)
        ):
            raise ProfileError(f"{where}: field 'allowed_ops' must be a list of TFLite op names or null")
        if not isinstance(self.min_top1_agreement, (int, float)) or not 0.0 <= self.min_top1_agreement <= 1.0:
            raise ProfileError(f"{where}: field 'min_top1_agreement' is {self.min_top1_agreement!r}; "
                               "expected a number from 0 to 1")
        for bound in ("max_abs_error", "max_relative_error"):
            value = getattr(self, bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ProfileError(f"{where}: field '{bound}' is {value!r}; expected a non-negative number or null")
        self._check_mcu_fields(where)
        if self.quantizer is not None:
            _choice("quantizer", self.quantizer, QUANTIZERS, where)
        integer_io = {"int8", "uint8", "int16"}
        if (self.input_dtype in integer_io or self.output_dtype in integer_io) and self.quantization not in (
            "int8", "int16x8"
        ):
            raise ProfileError(f"{where}: integer input/output dtypes need quantization int8 or int16x8, "
                               f"found {self.quantization!r}")

    def _check_mcu_fields(self, where: str) -> None:
        """Microcontroller / NPU fields: the clock and MAC rate behind estimates, the Vela target."""
        _positive_int("clock_hz", self.clock_hz, where)
        if self.macs_per_cycle is not None and (isinstance(self.macs_per_cycle, bool) or not isinstance(
                self.macs_per_cycle, (int, float)) or self.macs_per_cycle <= 0):
            raise ProfileError(f"{where}: field 'macs_per_cycle' is {self.macs_per_cycle!r}; expected a positive "
                               "number or null")
        if isinstance(self.micro_max_lsb, bool) or not isinstance(self.micro_max_lsb, int) or self.micro_max_lsb < 0:
            raise ProfileError(f"{where}: field 'micro_max_lsb' is {self.micro_max_lsb!r}; expected a whole number "
                               "of int8 steps, 0 or more (1 by default)")
        if self.npu is not None:
            _choice("npu", self.npu, NPUS, where)
            if self.hardware != "mcu" or self.quantization != "int8":
                raise ProfileError(f"{where}: an Ethos-U NPU (npu: {self.npu}) needs hardware 'mcu' and "
                                   "quantization 'int8'")
            if not self.npu_system_config or not self.npu_memory_mode:
                raise ProfileError(f"{where}: npu {self.npu} needs npu_system_config and npu_memory_mode (Vela's "
                                   "system config and memory mode, e.g. Ethos_U55_High_End_Embedded, Shared_Sram)")

    @property
    def default_format(self) -> str:
        return self.formats[0]

    @property
    def static_batch(self) -> bool:
        """Edge TPUs and microcontrollers need every shape fixed: convert with batch size 1."""
        return self.hardware in ("edgetpu", "mcu")

    @property
    def quantizes_with(self) -> str:
        """``litert`` (LiteRT's quantizer) for CPU and GPU devices that take and return float32: what it
        makes is what their XNNPACK / GPU kernels run. ``converter`` for Edge TPUs, microcontrollers and
        NPUs, and for integer I/O: their compilers (edgetpu_compiler, Vela) and TFLite Micro need every op
        integer with the converter's uint8/int8 I/O and op versions, and the converter fails when an op
        cannot be integer (``op_set: int8_builtins``), where the quantizer leaves it float, which such a
        device cannot run. A profile's ``quantizer`` field overrides this."""
        if self.quantizer is not None:
            return self.quantizer
        integer_io = self.input_dtype != "float32" or self.output_dtype != "float32"
        return "converter" if self.hardware in ("edgetpu", "mcu", "npu") or integer_io else "litert"

    @property
    def needs_calibration(self) -> bool:
        return self.quantization in ("int8", "int16x8")

    def get_config(self) -> dict[str, Any]:
        config = asdict(self)
        config.pop("source")
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], source: str = "user") -> DeviceProfile:
        if not isinstance(config, dict):
            raise ProfileError(f"{source}: a profile must be a mapping of fields, found {type(config).__name__}")
        known = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ProfileError(f"{source}: unknown field(s) {', '.join(unknown)}; "
                               f"allowed fields: {', '.join(sorted(known))}")
        if "name" not in config:
            raise ProfileError(f"{source}: field 'name' is missing")
        return cls(**config, source=source)
