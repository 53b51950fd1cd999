"""Developer tools, apart from what `dsbench-train` imports: the speed bench, its PyTorch
reference loop, the MLflow UI screenshot driver, and the README table generator."""
