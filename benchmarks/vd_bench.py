"""Sparse variational dropout (Molchanov, Ashukha & Vetrov 2017) on the LeNets, outside press, to set beside the
L0 gates of ``gates_bench.py``: does the other sparsity-inducing regularizer the 100x issue names reach further?

Each kernel weight gets a Gaussian posterior ``N(θ, σ²)`` with a learnt ``log σ²``; training minimises the cross
entropy plus ``strength`` x the mean KL divergence to the log-uniform prior (Molchanov's approximation), which
drives ``log α = log σ² - log θ²`` up on the weights the model can spare; at the end every weight with
``log α >= 3`` becomes an exact zero. Two forms:

- ``noise``: one draw of weight noise ``θ + σ·ε`` a step, trained by the compressor's own fine-tuning loop through
  its gates protocol (the loop L0 uses: the weights at the model's rate and schedule, ``log σ²`` on its own Adam);
- ``local``: the local reparameterization trick (each sample's pre-activations drawn from their Gaussian), a loop
  of its own over a Sequential of Dense layers (LeNet-300-100 only), the weights on a cosine decay.

Then, as for the gates: one epoch on the per-kernel int4 grid, int4 conversion as press converts for raspberry-pi-4,
narrowed and stripped as press ships; accuracy on the 10,000 test images and the 6,000 validation images, gzip of
the whole .tflite, same split as ``press_bench.py``::

    .venv/bin/python benchmarks/vd_bench.py --baseline <work>/baselines/mlp-48000-60.keras --train-samples 48000 \
        --strength 3 5 10 --epochs 12 --forms noise local --out benchmarks/results/vd_bench_48k.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from gates_bench import _accuracy, scored, setup  # noqa: E402

RESULTS = Path(__file__).parent / "results"
K1, K2, K3 = 0.63576, 1.87320, 1.48695  # Molchanov et al.'s fit of -KL(q || log-uniform prior) in log α
THRESHOLD = 3.0       # log α above which a weight is dropped (its noise outweighs it 20 to 1)
INIT_LOG_SIGMA2 = -10.0


def _log_alpha(theta, log_sigma2):
    import tensorflow as tf

    return tf.clip_by_value(log_sigma2 - tf.math.log(tf.square(theta) + 1e-8), -10.0, 10.0)


def _kl(thetas, log_sigma2s):
    """Sum over the weights of KL(q || prior), Molchanov's approximation."""
    import tensorflow as tf

    total = 0.0
    for theta, log_sigma2 in zip(thetas, log_sigma2s):
        la = _log_alpha(theta, log_sigma2)
        total = total + tf.reduce_sum(K1 - K1 * tf.sigmoid(K2 + K3 * la) + 0.5 * tf.math.softplus(-la))
    return total


class WeightNoise:
    """Sparse VD in the compressor's gates protocol (what ``finetune(..., gates=)`` trains, as for L0Gates)."""

    def __init__(self, model, strength: float, rate: float):
        import tensorflow as tf

        from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value

        self.layers = kernel_layers(model)
        self.targets = [kernel_variable(layer) for layer in self.layers]
        self.weights = [tf.Variable(variable_value(v).astype(np.float32)) for v in self.targets]
        self.log_alpha = [tf.Variable(np.full(w.shape, INIT_LOG_SIGMA2, np.float32)) for w in self.weights]  # log σ²
        self.strength, self.rate = float(strength), rate
        self.count = float(sum(int(np.prod(w.shape)) for w in self.weights))
        self.optimizer = None

    @property
    def sources(self):
        return [*self.weights, *self.log_alpha]

    def begin(self, keras) -> None:
        self.optimizer = keras.optimizers.Adam(self.rate)

    def kernels(self, training: bool):
        import tensorflow as tf

        pairs = zip(self.weights, self.log_alpha)
        if training:
            return [t + tf.exp(0.5 * s) * tf.random.normal(tf.shape(t)) for t, s in pairs]
        return [tf.where(_log_alpha(t, s) < THRESHOLD, t, tf.zeros_like(t)) for t, s in pairs]

    def penalty(self):
        return self.strength * _kl(self.weights, self.log_alpha) / self.count

    def strip(self) -> None:
        for var, value in zip(self.targets, self.kernels(training=False)):
            var.assign(np.asarray(value))


def train_noise(source, data, strength: float, epochs: int, rate: float | None, vd_rate: float):
    import keras

    from modelpress.compressor.finetune import FineTune, finetune
    from modelpress.compressor.flavors import clone_model

    model = clone_model(source, "keras3")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    vd = WeightNoise(model, strength, vd_rate)
    finetune(model, data, FineTune(epochs=epochs, batch_size=64, learning_rate=rate).for_model(source), "keras3",
             gates=vd, desc="sparse VD")
    vd.strip()
    return model


def train_local(source, data, strength: float, epochs: int, rate: float | None, vd_rate: float):
    import keras
    import tensorflow as tf

    from modelpress.compressor.flavors import clone_model

    dense = [layer for layer in source.layers if type(layer).__name__ == "Dense"]
    if len(dense) != len(source.layers) - 1:
        raise SystemExit("--forms local takes a Sequential of Flatten and Dense layers (LeNet-300-100)")
    thetas = [tf.Variable(np.asarray(layer.kernel)) for layer in dense]
    biases = [tf.Variable(np.asarray(layer.bias)) for layer in dense]
    log_sigma2s = [tf.Variable(np.full(layer.kernel.shape, INIT_LOG_SIGMA2, np.float32)) for layer in dense]
    x = data.x_train.reshape(len(data.x_train), -1).astype(np.float32)
    y = data.y_train.astype(np.int64)
    steps = int(np.ceil(len(x) / 64)) * epochs
    weights_opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(rate or 1e-3, steps))
    noise_opt = keras.optimizers.Adam(vd_rate)
    count = float(sum(int(np.prod(t.shape)) for t in thetas))

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            h = xb
            for i, (theta, bias, log_sigma2) in enumerate(zip(thetas, biases, log_sigma2s)):
                mean, var = h @ theta + bias, tf.square(h) @ tf.exp(log_sigma2)
                h = mean + tf.sqrt(var + 1e-8) * tf.random.normal(tf.shape(mean))
                h = tf.nn.relu(h) if i < len(thetas) - 1 else h  # the last layer's softmax is in the loss
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, h)) \
                + strength * _kl(thetas, log_sigma2s) / count
        grads = tape.gradient(loss, [*thetas, *biases, *log_sigma2s])
        weights_opt.apply_gradients(zip(grads[:2 * len(thetas)], [*thetas, *biases]))
        noise_opt.apply_gradients(zip(grads[2 * len(thetas):], log_sigma2s))

    rng = np.random.default_rng(0)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            step(tf.constant(x[idx]), tf.constant(y[idx]))
    model = clone_model(source, "keras3")
    for layer, theta, bias, log_sigma2 in zip([m for m in model.layers if type(m).__name__ == "Dense"], thetas,
                                              biases, log_sigma2s):
        layer.kernel.assign(np.where(np.asarray(_log_alpha(theta, log_sigma2)) < THRESHOLD, np.asarray(theta), 0.0))
        layer.bias.assign(np.asarray(bias))
    return model


def run(args) -> list[dict]:
    from modelpress.compressor.finetune import FineTune
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import Recipe, Step

    bench = setup(args.baseline, args.train_samples)
    grid = Recipe(name="int4 grid", finetune=FineTune(epochs=3, batch_size=64, learning_rate=args.rate),
                  steps=[Step.from_config({"type": "qat", "bits": 4, "epochs": 1, "granularity": "tensor"})])
    rows = []
    for form, strength in itertools.product(args.forms, args.strength):
        started = time.time()
        train = train_noise if form == "noise" else train_local
        sparse = train(bench.source, bench.tuning, strength, args.epochs, args.rate, args.vd_rate)
        sparse_val = _accuracy(sparse, bench.xv, bench.yv)  # float, before the int4 grid
        model, _, _ = run_recipe(sparse, "keras3", grid, bench.tuning)
        row = {"form": form, "strength": strength, "epochs": args.epochs, "rate": args.rate, "vd_rate": args.vd_rate,
               "drop_val_sparse_float": round((bench.base_val - sparse_val) * 100, 2), **scored(model, bench),
               "seconds": round(time.time() - started, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return [{"baseline": str(args.baseline), "baseline_test": bench.base_test, "baseline_val": bench.base_val,
             "train_samples": args.train_samples, "float32_gzip_kb": bench.float_kb}] + rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="press_bench.py's converged LeNet (.keras)")
    parser.add_argument("--train-samples", type=int, default=18000)
    parser.add_argument("--strength", type=float, nargs="+", default=[5.0],
                        help="the KL term's weight over its mean per weight (the ELBO's own: weights / samples)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--forms", nargs="+", default=["noise"], choices=("noise", "local"))
    parser.add_argument("--rate", type=float, default=None, help="the weights' peak rate (default: the model's own)")
    parser.add_argument("--vd-rate", type=float, default=0.01, help="Adam's rate for log σ²")
    parser.add_argument("--out", type=Path, default=RESULTS / "vd_bench.json")
    args = parser.parse_args(argv)
    rows = run(args)
    text = json.dumps({"benchmark": "sparse variational dropout", "argv": sys.argv[1:] if argv is None else argv,
                       "rows": rows}, indent=2)
    args.out.write_text(text.replace(str(args.baseline.parent), "<baselines>"))  # no folder of this machine
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
