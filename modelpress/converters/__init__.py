"""Converters: Keras / SavedModel to TFLite or SavedModel artifacts, verified and packaged.

Imports TensorFlow (inside the functions that need it). The entry point for users is
:func:`modelpress.convert`; these modules are its parts.
"""
