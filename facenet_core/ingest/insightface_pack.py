"""Write insightface-style packs: a RecordIO `train.rec` + `train.idx` and verification `.bin` sets.

The layout of glint360k, MS1M and the CASIA repack, which `recordio_unpack` and `insightface_bin`
read: record 0 is a header (labels = [first identity record, end]), then one record per image
(label = identity number, key = record number), then one record per identity (labels = its image
range). Used to build small packs of real or generated faces for tests and benchmarks.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facenet_core.fileio import atomic_write_bytes
from facenet_core.ingest.recordio import IRHeader, RecordIOWriter, pack_record


def write_recordio_pack(rec_path: str | os.PathLike, identities: Sequence[Sequence[bytes]]) -> dict[str, int]:
    """Write `identities` (each a list of encoded images) as `rec_path` plus the .idx beside it.

    Identity i gets label i; returns the counts of images and identities.
    """
    if not identities or any(not images for images in identities):
        raise ValueError("a pack needs at least one identity and every identity at least one image")
    rec = Path(rec_path)
    images = sum(len(group) for group in identities)
    first_identity = images + 1
    with RecordIOWriter(rec, rec.with_suffix(".idx")) as writer:
        header = IRHeader(2, np.array([first_identity, first_identity + len(identities)], np.float32), 0, 0)
        writer.write(pack_record(header), key=0)
        key = 1
        spans = []
        for label, group in enumerate(identities):
            start = key
            for data in group:
                writer.write(pack_record(IRHeader(0, float(label), key, 0), data), key=key)
                key += 1
            spans.append((start, key))
        for number, (start, end) in enumerate(spans):
            span = IRHeader(2, np.array([start, end], np.float32), 0, 0)
            writer.write(pack_record(span), key=first_identity + number)
    return {"images": images, "identities": len(identities)}


def write_verification_bin(bin_path: str | os.PathLike, pairs: Sequence[tuple[bytes, bytes, bool]]) -> Path:
    """Write `pairs` (image, image, same person) as an insightface verification `.bin`.

    `insightface_bin.convert_bin` turns it into folders and a 10-fold pairs.txt, so the pairs
    must form 10 equal folds of half same, half different pairs.
    """
    images = [image for first, second, _ in pairs for image in (first, second)]
    issame = [bool(same) for _, _, same in pairs]
    return atomic_write_bytes(Path(bin_path), pickle.dumps((images, issame), protocol=pickle.HIGHEST_PROTOCOL))
