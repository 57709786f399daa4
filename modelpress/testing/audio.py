"""Real-shaped audio inputs for the third-party audio models the zoo benchmark runs (no audio files ship
with the machine): click tracks at known tempos as log-mel spectrograms for the tempo estimators, and
openWakeWord's own feature pipeline (its melspectrogram and embedding models) over synthetic voiced sound::

    x = click_spectrograms(32, frames=256)               # [32, 40, 256, 1] mel, tempos 60..200 BPM
    mel, emb = wakeword_features(models_dir, clips=8)    # [n, 76, 32, 1] mel windows, [n, 16, 96] embeddings
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEMPO_RATE, TEMPO_FFT, TEMPO_HOP, TEMPO_BANDS = 11025, 1024, 512, 40


def _mel_filters(rate: int, n_fft: int, bands: int, low: float = 20.0, high: float = 5000.0) -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(low), mel(high), bands + 2) / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    filters = np.zeros((bands, len(bins)), dtype=np.float32)
    for b in range(bands):
        left, centre, right = edges[b:b + 3]
        rising = (bins - left) / (centre - left)
        falling = (right - bins) / (right - centre)
        filters[b] = np.maximum(0.0, np.minimum(rising, falling))
    return filters


def click_spectrograms(count: int, frames: int = 256, seed: int = 0, normalize: str = "max") -> np.ndarray:
    """``count`` mel spectrograms [count, 40, frames, 1] of click tracks (a drum-like click on each beat,
    tempos 60..200 BPM, some noise) as tempo-CNN's models take them: 11025 Hz, 1024-point FFT, hop 512,
    40 mel bands 20..5000 Hz of magnitudes, each window scaled by its maximum (``normalize="max"``: fcn,
    cnn) or to zero mean and unit deviation (``"std"``: deeptemp, shallowtemp)."""
    rng = np.random.default_rng(seed)
    filters = _mel_filters(TEMPO_RATE, TEMPO_FFT, TEMPO_BANDS)
    length = TEMPO_HOP * (frames - 1) + TEMPO_FFT
    window = np.hanning(TEMPO_FFT).astype(np.float32)
    out = np.empty((count, TEMPO_BANDS, frames, 1), dtype=np.float32)
    t = np.arange(2048) / TEMPO_RATE
    click = (np.sin(2 * np.pi * 1000 * t) * np.exp(-t * 60)).astype(np.float32)
    for i in range(count):
        bpm = rng.uniform(60, 200)
        signal = rng.normal(0, 0.01, length).astype(np.float32)
        period = int(TEMPO_RATE * 60 / bpm)
        for start in range(int(rng.integers(0, period)), length - len(click), period):
            signal[start:start + len(click)] += click * rng.uniform(0.6, 1.0)
        starts = np.arange(frames) * TEMPO_HOP
        spectrum = np.abs(np.fft.rfft(np.stack([signal[s:s + TEMPO_FFT] * window for s in starts]), axis=1))
        mel = filters @ spectrum.T
        out[i, :, :, 0] = mel / mel.max() if normalize == "max" else (mel - mel.mean()) / (mel.std() or 1.0)
    return out


def _voiced(seconds: float, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """A voiced, speech-like sound: a gliding pitch with harmonics and syllable-rate amplitude, as int16 values."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = rng.uniform(100, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    sound = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 6) * t) ** 2
    return (sound * envelope * 6000 + rng.normal(0, 300, len(t))).astype(np.float32)


def wakeword_features(models_dir: Path, clips: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """openWakeWord's features, computed with its own models: mel windows [n, 76, 32, 1] (the embedding
    model's input) and embedding windows [n, 16, 96] (the wake-word models' input), from ``clips``
    2-second synthetic voiced sounds."""
    from modelpress.tflite_interpreter import TFLiteModel

    rng = np.random.default_rng(seed)
    melspec = TFLiteModel(Path(models_dir) / "melspectrogram.tflite")
    embed = TFLiteModel(Path(models_dir) / "embedding_model.tflite")
    mels, embeddings = [], []
    for _ in range(clips):
        frames = melspec.predict([_voiced(2.0, rng)[None, :]])[0][0, 0] / 10.0 + 2.0   # openWakeWord's scaling
        windows = np.stack([frames[s:s + 76] for s in range(0, len(frames) - 76 + 1, 8)])[..., None]
        mels.append(windows)
        vectors = embed.predict([windows.astype(np.float32)])[0].reshape(len(windows), 96)
        while len(vectors) < 16:
            vectors = np.concatenate([vectors, vectors])
        embeddings.append(vectors[:16])
    return np.concatenate(mels).astype(np.float32), np.stack(embeddings).astype(np.float32)
