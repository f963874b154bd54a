"""Using a trained model on photos, in memory: the layer under `facenet verify/embed/search`, the
served model and ONNX export.

Modules, one concept each: faces (photos -> faces found, each with the crop the crop stage would
make of it), model (the typed preprocessing contract `ModelContract` and `load_model`, which
loads a model from an MLflow URI, a project checkpoint or a seed checkpoint with its contract),
embedder (the `Embedder` protocol every runtime implements, and `TorchEmbedder`, crops ->
L2-normalised embeddings through the evaluation transform).
"""
