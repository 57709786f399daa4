"""Sizes of a model file or folder, raw and gzipped: defined in :mod:`modelpress.files`, which the runtime's
side can read too; kept here for the converters' imports::

    from modelpress.converters.sizes import gzip_bytes, raw_bytes
"""

from __future__ import annotations

from modelpress.files import gzip_bytes, raw_bytes

__all__ = ["gzip_bytes", "raw_bytes"]
