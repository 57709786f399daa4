"""Microcontroller and NPU export: C sources, TFLite Micro checks, arena measurement, Vela, estimates.

Modules: ``bundle`` (what a package gains: :func:`~modelpress.converters.mcu.bundle.add_mcu_parts`),
``c_sources``, ``micro_check``, ``arena``, ``vela``, ``estimates``, ``figures``. Building a package
needs the ``mcu`` extra (``pip install 'modelpress[mcu]'``: tflite-micro, ethos-u-vela); the estimates
and figures need only the core::

    from modelpress.converters.mcu.bundle import add_mcu_parts, is_mcu_profile
    from modelpress.converters.mcu.estimates import estimates_for_builtin_profiles
"""
