"""Stage 5, tracking: the MLflow store, one run per job, a parent run per sweep, resume.

Free of Keras, so that Hydra can load the sweep callback before the backend is chosen.
"""
