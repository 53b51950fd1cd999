"""Stage 1, data: the registry, the official archives (md5-checked), IDX and CIFAR binary
readers, TFDS prepared offline from the same archives, GCN/ZCA, and the seeded splits.

numpy (and, on the TFDS path only, tensorflow-datasets): nothing here imports Keras.
"""
