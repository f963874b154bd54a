"""Gallery search: the streamed top-k equals a brute-force numpy computation, whatever the batch size;
galleries of another model or dimension are refused; `facenet search` on LFW photos."""

from __future__ import annotations

import re

import numpy as np
import pytest
from support.cli import assert_one_line_error, invoke

from facenet_core.errors import UserError
from facenet_core.fileio import sha256_file
from facenet_core.inference.gallery import EmbeddingsWriter
from facenet_core.inference.search import gallery_batches, search_gallery

MODEL = "sha256:" + "ab" * 32
DIMENSION = 8


def _unit(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _write_gallery(path, rows, model=MODEL, dimension=DIMENSION):
    with EmbeddingsWriter(path, dimension=dimension, model=model, metric="euclidean", row_group_rows=7) as writer:
        writer.write(rows)
    return path


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """40 faces: 30 of 6 people (5 each), 8 of flat photos (no identity), 2 rows without a face."""
    rng = np.random.default_rng(7)
    vectors = _unit(rng, 40)
    rows = []
    for i, vector in enumerate(vectors):
        identity = f"person{i % 6}" if i < 30 else None
        status = "ok" if i < 38 else "no_face"
        row = {"source": f"photos/{i}.jpg", "identity": identity, "status": status}
        if status == "ok":
            row.update(face_index=0, box=[0, 0, 9, 9], score=0.99, embedding=vector)
        rows.append(row)
    path = _write_gallery(tmp_path_factory.mktemp("search") / "gallery.parquet", rows)
    return path, rows


def _brute_force(queries, rows, metric, top_k):
    """Per query: (label, distance) of the top_k nearest labels, each at its nearest face, in float64."""
    usable = [row for row in rows if row["status"] == "ok"]
    matrix = np.stack([row["embedding"] for row in usable]).astype(np.float64)
    labels = [row["identity"] or row["source"] for row in usable]
    results = []
    for query in queries.astype(np.float64):
        if metric == "euclidean":
            distances = np.linalg.norm(matrix - query, axis=1)
        else:
            distances = 1 - matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
        nearest: dict[str, float] = {}
        for label, distance in zip(labels, distances, strict=True):
            nearest[label] = min(distance, nearest.get(label, np.inf))
        results.append(sorted(nearest.items(), key=lambda item: item[1])[:top_k])
    return results


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("batch_rows", [3, 32768])
def test_top_k_equals_brute_force_whatever_the_batch_size(gallery, metric, batch_rows):
    path, rows = gallery
    queries = _unit(np.random.default_rng(3), 5)
    found = search_gallery(queries, path, model=MODEL, metric=metric, top_k=4, batch_rows=batch_rows)
    for matches, expected in zip(found, _brute_force(queries, rows, metric, 4), strict=True):
        assert [match.label for match in matches] == [label for label, _ in expected]
        np.testing.assert_allclose([m.distance for m in matches], [d for _, d in expected], atol=1e-5)
        for match in matches:  # the face reported is the label's nearest one
            row = next(r for r in rows if r["source"] == match.source)
            assert (row["identity"] or row["source"]) == match.label and match.identity == row["identity"]


@pytest.mark.parametrize("batch_rows", [3, 7, 10, 100])
def test_gallery_batches_hold_at_most_batch_rows_and_every_row_once(gallery, batch_rows):
    path, rows = gallery
    batches = list(gallery_batches(path, batch_rows))
    assert all(batch.num_rows <= batch_rows for batch in batches)
    assert [source for batch in batches for source in batch["source"].to_pylist()] == [r["source"] for r in rows]
    if batch_rows >= 7:  # whole row groups of 7 rows read together
        assert len(batches) == -(-40 // (batch_rows // 7 * 7))


def test_top_k_larger_than_the_gallery_lists_every_identity(gallery):
    path, _ = gallery
    [matches] = search_gallery(_unit(np.random.default_rng(4), 1), path, model=MODEL, top_k=100, batch_rows=5)
    assert len(matches) == 6 + 8
    assert [m.distance for m in matches] == sorted(m.distance for m in matches)


def test_a_gallery_of_another_model_or_dimension_is_refused(gallery, tmp_path):
    path, _ = gallery
    queries = _unit(np.random.default_rng(5), 2)
    with pytest.raises(UserError, match=f"embedded by model {MODEL}, not sha256:other"):
        search_gallery(queries, path, model="sha256:other")
    with pytest.raises(UserError, match="holds 8-d embeddings, the model makes 4-d ones"):
        search_gallery(queries[:, :4], path, model=MODEL)
    not_parquet = tmp_path / "gallery.parquet"
    not_parquet.write_text("source,embedding\n")
    with pytest.raises(UserError, match="is not a Parquet file"):
        search_gallery(queries, not_parquet, model=MODEL)
    with pytest.raises(UserError, match="top_k 0"):
        search_gallery(queries, path, model=MODEL, top_k=0)


@pytest.mark.lfw
def test_search_command_lists_the_nearest_identities(photo_tree, lfw_dir, project_checkpoint, tmp_path, capsys):
    out = tmp_path / "gallery.parquet"
    model = ["--checkpoint", str(project_checkpoint), "--device", "cpu"]
    assert invoke(["embed", str(photo_tree), *model, "--out", str(out)], capsys)[0] == 0
    query = lfw_dir / "lfw-deepfunneled" / "Aaron_Peirsol" / "Aaron_Peirsol_0003.jpg"
    code, stdout, _ = invoke(["search", str(query), "--gallery", str(out), *model, "--top_k", "1"], capsys)
    lines = stdout.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0] == "threshold 1.050000 (euclidean; best-accuracy threshold of the model's evaluation)"
    assert re.fullmatch(rf"query {re.escape(str(query))} box \d+,\d+,\d+,\d+", lines[1])
    match = re.fullmatch(r"\s+1  (\S+)\s+(\d\.\d{6})  (same|different)\s+(\S+) face 0", lines[2])
    assert match and match.group(1) in ("Aaron_Peirsol", "Abdullah_Gul")
    assert match.group(3) == ("same" if float(match.group(2)) < 1.05 else "different")
    assert match.group(4).startswith(str(photo_tree / match.group(1)))


def test_search_command_bad_inputs_get_one_line_each(gallery, project_checkpoint, tmp_path, capsys):
    path, _ = gallery
    query = tmp_path / "who.jpg"
    query.write_bytes(b"")
    model = ["--checkpoint", str(project_checkpoint), "--device", "cpu"]
    other = f"embedded by model {MODEL}, not sha256:{sha256_file(project_checkpoint)}"
    cases = [
        (["--gallery", str(path), "--top_k", "0"], "--top-k: 0 is out of range"),
        (["--gallery", str(tmp_path / "none.parquet")], "none.parquet does not exist"),
        (["--gallery", str(path)], other),
    ]
    for extra, message in cases:
        code, _, err = invoke(["search", str(query), *extra, *model], capsys)
        assert code == 2 and message in assert_one_line_error(err)
