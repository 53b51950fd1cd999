"""Stage 4, training: backend selection, Keras `fit` or the device loop, evaluation, timing.

`dsbench.training.run.train(cfg)` is one whole run; the modules that import Keras are
imported only after `backend.select_backend` has set KERAS_BACKEND.
"""
