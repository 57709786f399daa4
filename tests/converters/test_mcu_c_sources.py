"""The generated C files compile with -Wall -Werror, and the resolver registers exactly the model's ops.

The model is a real int8 digits CNN (the runtime's fixture package); ``model_ops.h`` is compiled and run
against a small stand-in for TFLite Micro's ``MicroMutableOpResolver`` written here, which counts what
is registered and refuses an op past N or twice, as the real one does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from modelpress.converters.mcu.c_sources import c_identifier, resolver_methods, write_c_sources
from modelpress.errors import ConstraintError
from modelpress.tflite_graph import read_graph

FIXTURE = Path(__file__).parents[1] / "runtime" / "fixtures" / "packages" / "int8" / "model.tflite"
GXX, GCC = shutil.which("g++"), shutil.which("gcc")
pytestmark = pytest.mark.skipif(not (GXX and GCC), reason="needs gcc and g++ (Debian build-essential)")

STUB = """// A stand-in for tensorflow/lite/micro/micro_mutable_op_resolver.h: same names, same contract.
#pragma once
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  unsigned int registered() const { return count_; }
#define STUB_OP(method, code) TfLiteStatus method() { return Add(code); }
  STUB_OP(AddConv2D, 3) STUB_OP(AddDequantize, 6) STUB_OP(AddFullyConnected, 9) STUB_OP(AddMaxPool2D, 17)
  STUB_OP(AddReshape, 22) STUB_OP(AddSoftmax, 25) STUB_OP(AddStridedSlice, 45) STUB_OP(AddPack, 83)
  STUB_OP(AddShape, 77) STUB_OP(AddQuantize, 114) STUB_OP(AddEthosU, 1000)
 private:
  TfLiteStatus Add(int code) {
    for (unsigned int i = 0; i < count_; ++i) if (codes_[i] == code) return kTfLiteError;
    if (count_ >= tOpCount) return kTfLiteError;
    codes_[count_++] = code;
    return kTfLiteOk;
  }
  int codes_[tOpCount];
  unsigned int count_ = 0;
};
}  // namespace tflite
"""

MAIN = """#include <cstdint>
#include <cstdio>
#include <cstring>
#include "model_data.h"
#include "model_ops.h"

int main() {
  {cls}OpResolver resolver;
  if ({prefix}_register_ops(resolver) != kTfLiteOk) return 1;
  if (resolver.registered() != k{cls}OpCount) return 2;
  if (resolver.AddSoftmax() == kTfLiteOk) return 3;             // full: N is exactly the op count
  if (reinterpret_cast<std::uintptr_t>({prefix}_model_data) % 16 != 0) return 4;
  if ({prefix}_model_data_len != {upper}_MODEL_DATA_LEN) return 5;
  if (std::memcmp({prefix}_model_data + 4, "TFL3", 4) != 0) return 6;
  static unsigned char arena[{upper}_TENSOR_ARENA_SIZE];
  std::printf("%u ops, %u bytes, arena %zu\\n", resolver.registered(), {prefix}_model_data_len, sizeof(arena));
  return 0;
}
"""

C_USER = """#include "model_data.h"
unsigned int model_size(void) { return {prefix}_model_data_len + (unsigned int)({prefix}_model_data[0] & 0u); }
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stderr}"
    return result


def _build_and_run(folder: Path, prefix: str) -> str:
    stub = folder / "include" / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    (stub / "micro_mutable_op_resolver.h").write_text(STUB)
    cls = "".join(p.capitalize() for p in prefix.split("_"))
    (folder / "main.cc").write_text(MAIN.replace("{cls}", cls).replace("{prefix}", prefix)
                                    .replace("{upper}", prefix.upper()))
    (folder / "user.c").write_text(C_USER.replace("{prefix}", prefix))
    flags = ["-Wall", "-Wextra", "-Werror"]
    _run([GXX, "-std=c++11", *flags, "-c", "model_data.cc", "-o", "model_data.o"], folder)
    _run([GCC, "-std=c99", *flags, "-pedantic", "-c", "user.c", "-o", "user.o"], folder)
    _run([GXX, "-std=c++11", *flags, "-Iinclude", "-c", "main.cc", "-o", "main.o"], folder)
    _run([GXX, "main.o", "model_data.o", "user.o", "-o", "check"], folder)
    return _run([str(folder / "check")], folder).stdout


def test_c_sources_compile_and_register_exactly_the_models_ops(tmp_path):
    data = FIXTURE.read_bytes()
    ops = read_graph(data).ops
    sources = write_c_sources(tmp_path, data, "Digits CNN", ops, 8192, "a test figure")
    assert sources.prefix == "digits_cnn" and sources.op_count == len(set(ops)) == 10
    out = _build_and_run(tmp_path, sources.prefix)
    assert out.strip() == f"10 ops, {len(data)} bytes, arena 8192"


def test_vela_compiled_model_registers_the_npu_operator(tmp_path):
    pytest.importorskip("ethosu.vela")
    from modelpress.converters.mcu.vela import compile_with_vela
    from modelpress.device_profiles import load_profile

    model = tmp_path / "model.tflite"
    model.write_bytes(FIXTURE.read_bytes())
    report = compile_with_vela(model, load_profile("ethos-u55-128"))
    compiled = (tmp_path / report.compiled_file).read_bytes()
    ops = read_graph(compiled).ops
    assert "ethos-u" in ops and report.npu_ops > 0 and report.cycles > 0 and report.sram_bytes > 0
    assert sorted(set(ops) - {"ethos-u"}) == report.cpu_op_names  # what Vela left to the Cortex-M
    folder = tmp_path / "c"
    folder.mkdir()
    sources = write_c_sources(folder, compiled, "digits", ops, 16384, "a test figure")
    assert "AddEthosU" in sources.methods
    out = _build_and_run(folder, "digits")
    assert out.startswith(f"{len(set(ops))} ops, {len(compiled)} bytes")


def test_names_are_c_identifiers_and_unknown_ops_are_named():
    assert c_identifier("2-stage model.v3") == "m_2_stage_model_v3"
    assert c_identifier("???") == "model"
    assert resolver_methods(["CONV_2D", "CONV_2D", "PADV2", "CUMSUM"]) == ["AddConv2D", "AddPadV2", "AddCumSum"]
    with pytest.raises(ConstraintError, match="TFLite Micro has no kernel for op\\(s\\) GELU, FlexErf"):
        resolver_methods(["CONV_2D", "GELU", "FlexErf"])
