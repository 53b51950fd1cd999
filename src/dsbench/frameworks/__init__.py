"""Stage 3, frameworks: a plan (dsbench.model) turned into a framework's model.

`keras_model` builds the Keras 3 model the suite trains (any backend); `torch_model` builds the
PyTorch reference model of the bench from the same plan. Each imports its framework. Each layer
spec's layer comes from the builder registered for its class (`builders`, framework-free):
`@keras_builder` beside the Keras class in `keras_layers` (stock layers: `keras_model`),
`@torch_builder` in `torch_model`. (Not named `build/`: tools take such a folder for build
output, and the stock Python .gitignore drops it.)
"""
