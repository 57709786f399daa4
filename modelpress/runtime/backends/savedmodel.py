"""SavedModel backend (the GPU path): TensorFlow is imported in :meth:`load`, only when such a package
is served, so a TFLite-only device never needs it::

    backend = SavedModelBackend("repo/resnet/3", read_manifest("repo/resnet/3"))
    backend.load()
    (probs,) = backend.predict([x])
"""

from __future__ import annotations

import numpy as np

from modelpress.errors import ArtifactError, BadRequestError
from modelpress.runtime.backends.base import Backend


class SavedModelBackend(Backend):
    platform = "tensorflow_savedmodel"

    def load(self) -> None:
        try:
            import tensorflow as tf
        except ImportError:
            raise ArtifactError(f"{self.folder} is a SavedModel package, which needs TensorFlow: "
                                "pip install 'modelpress[full]' (or convert it to TFLite)") from None
        self._tf = tf
        path = self.folder / self.manifest.model_file
        try:
            self._model = tf.saved_model.load(str(path))
        except Exception as err:  # TF raises many kinds for a corrupt model
            raise ArtifactError(f"{path} cannot be loaded as a SavedModel: {str(err).splitlines()[0]}") from None
        signatures = getattr(self._model, "signatures", {})
        key = self.manifest.signature or "serving_default"
        if key not in signatures:
            raise ArtifactError(f"{path} has no {key} signature; re-create the package")
        self._fn = signatures[key]
        # manifests list a SavedModel's tensors in sorted order (written or inferred): pair them the same way
        self._input_names = sorted(self._fn.structured_input_signature[1])
        if len(self._input_names) != len(self.inputs):
            raise ArtifactError(f"{path} takes {len(self._input_names)} inputs; its manifest lists {len(self.inputs)}")

    def predict(self, inputs: list[np.ndarray], raw: bool = False) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise BadRequestError(f"the model takes {len(self.inputs)} input(s), got {len(inputs)}")
        specs = {s.name: s for s in self.inputs}
        feed = {}
        for name, spec, value in zip(self._input_names, self.inputs, inputs):
            key = name if name in specs else spec.name
            feed[name] = self._tf.constant(np.asarray(value, dtype=specs.get(key, spec).dtype))
        result = self._fn(**feed)
        names = [s.name for s in self.outputs]
        if all(n in result for n in names):
            return [np.asarray(result[n]) for n in names]
        return [np.asarray(result[k]) for k in sorted(result)]

    def unload(self) -> None:
        self._model = self._fn = None
