"""Using a trained model on photos, in memory: the layer under `facenet verify/embed/search/export`
and the served model.

Modules, one concept each: faces (photos -> the faces found, each with the crop the crop stage
would make of it), model (the typed preprocessing contract `ModelContract` and `load_model`: an
MLflow URI or folder, a project checkpoint or a seed checkpoint, with its contract), embedder (the
`Embedder` protocol every runtime implements, and `TorchEmbedder`: crops -> unit-length embeddings
through the evaluation transform), onnx (ONNX export and `OnnxEmbedder`), runtime (a model opened
in the runtime asked for, with its identity), photos (which photos the inputs name), embed_photos
(photos -> faces and embeddings, a status per photo), verify (two photos -> same person or not),
gallery (embeddings tables), search (nearest identities in a table).
"""
