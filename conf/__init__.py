"""The configs as a package (dsbench.conf), so Hydra finds them by pkg:// from any folder."""
