"""Stage 3, build: a plan (dsbench.model) turned into a framework's model.

`keras_model` builds the Keras 3 model the suite trains (any backend); `torch_model` builds the
PyTorch reference model of the bench from the same plan. Each imports its framework.
"""
