"""Developer tools, apart from what `dsbench-train` imports: the speed benches, their PyTorch
reference loop, and the README table generator. The tools that need a checkout (the MLflow UI
driver, the PostgreSQL starter, the analysis-scale bench) live in `devtools/`, not installed."""
