"""MTCNN weights from the `mtcnn` package's files, read without importing that package.

The files are LZ4-framed joblib pickles of float32 arrays in Keras `get_weights()` order. They are
opened with an unpickler that resolves only the three classes those files need and only after
their sha256 matches the pinned value, so a tampered file can neither run code nor load silently.
"""

from __future__ import annotations

import importlib.metadata
import io
from pathlib import Path

import lz4.frame
import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

from facenet_core.fileio import sha256_file

SHA256 = {
    "pnet": "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5",
    "rnet": "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee",
    "onet": "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3",
}
ARRAY_COUNTS = {"pnet": 13, "rnet": 16, "onet": 21}
ALLOWED = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): NumpyArrayWrapper,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}


class _RestrictedUnpickler(NumpyUnpickler):
    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise ValueError(f"MTCNN weight file refers to {module}.{name}, which is not allowed") from None


def weights_path(net: str) -> Path:
    """Location of `<net>.lz4` inside the installed `mtcnn` distribution."""
    try:
        dist = importlib.metadata.distribution("mtcnn")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError("the `mtcnn` package (which ships the MTCNN weights) is not installed") from None
    return Path(dist.locate_file(f"mtcnn/assets/weights/{net}.lz4"))


def load_weights(net: str, path: str | Path | None = None) -> list[np.ndarray]:
    """The float32 arrays of `net` (pnet, rnet or onet) in Keras order, after checking the pinned hash."""
    if net not in SHA256:
        raise ValueError(f"unknown MTCNN network {net!r}: expected one of {sorted(SHA256)}")
    path = Path(path) if path is not None else weights_path(net)
    if not path.is_file():
        raise FileNotFoundError(f"MTCNN weight file {path} is missing: reinstall the `mtcnn` package")
    digest = sha256_file(path)
    if digest != SHA256[net]:
        raise ValueError(f"MTCNN weight file {path} has sha256 {digest}, expected {SHA256[net]}")
    raw = io.BytesIO(lz4.frame.decompress(path.read_bytes()))
    arrays = _RestrictedUnpickler(str(path), raw, ensure_native_byte_order=True).load()
    if not isinstance(arrays, list) or len(arrays) != ARRAY_COUNTS[net]:
        raise ValueError(f"MTCNN weight file {path} does not hold {ARRAY_COUNTS[net]} arrays")
    return [np.asarray(a, dtype=np.float32) for a in arrays]
