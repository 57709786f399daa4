"""Microcontroller and NPU export: C sources, TFLite Micro checks, arena measurement, Vela, estimates.

Needs the ``mcu`` extra (``pip install 'modelpress[mcu]'``: tflite-micro, ethos-u-vela) to build a
package; the estimates need only the core::

    from modelpress.converters.mcu import add_mcu_parts, is_mcu_profile
"""

from modelpress.converters.mcu.bundle import McuParts, add_mcu_parts, is_mcu_profile

__all__ = ["McuParts", "add_mcu_parts", "is_mcu_profile"]
