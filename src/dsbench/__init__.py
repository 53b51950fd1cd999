"""dsbench: convnets that differ only in how they downsample, trained and compared."""

__version__ = "0.1.0"
