"""MTCNN face detection (a faithful PyTorch port of the reference TensorFlow detector) and the crop stage."""
