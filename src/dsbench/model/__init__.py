"""Stage 2, model: every model as backbone × downsampling strategy × head, as plain data.

Pure Python: shapes (the floor((n − k + 2p)/s) + 1 formula), parameters and FLOPs are
predicted, and bad geometry rejected, before any framework is imported. This package
imports neither Keras, TensorFlow, JAX, PyTorch nor MLflow (a test holds it);
`dsbench.frameworks` turns a plan into a framework's model.
"""
