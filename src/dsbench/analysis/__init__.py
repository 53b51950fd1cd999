"""Stage 6, analysis: runs → pandas frames → tables, plots, a dashboard and a report.

Reads the tracking store through MLflow's search API; imports neither TensorFlow nor Keras
(a test holds it), so analysis runs on any machine that reaches the store.
"""
