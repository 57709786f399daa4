"""The demo's comparison table as printed: every cell says what its value is."""

from __future__ import annotations

from modelpress.demo.trip import COLUMNS, _row
from modelpress.tables import text_table


def test_a_speed_up_far_below_one_is_printed_as_it_is():
    """The Keras source answers one sample ~250x slower than its float32 TFLite: its speed-up is 0.004x,
    not 0.00x (which reads as 'no speed at all' or as a missing value)."""
    reference = _row("example", "float32 TFLite (reference)", "tflite", "none", 20_000, 18_000, 0.97, 1.0, 0.02, None)
    base = dict(reference, bytes=60_000)
    keras = _row("example", "keras (source)", "keras", "none", 60_000, 50_000, 0.97, 1.0, 4.8, base)
    int8 = _row("example", "raspberry-pi-4", "tflite", "int8", 8_000, 6_000, 0.96, 0.99, 0.008, base)
    lines = text_table([keras, reference, int8], COLUMNS).splitlines()
    header = lines[0]
    start = header.index("speed-up vs f32 TFLite")
    cells = [line[start:start + len("speed-up vs f32 TFLite")].strip() for line in lines[2:]]
    assert cells == ["0.0042x", "1.00x", "2.50x"]
