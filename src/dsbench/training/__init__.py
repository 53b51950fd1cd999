"""Stage 4, training: the checked job, backend selection, Keras `fit` or the device loop,
evaluation, timing.

`job.make_job(cfg)` checks a composed config once; `run.train(job)` is one whole run. The
modules that import Keras are imported only after `backend.select_backend` has set
KERAS_BACKEND.
"""
