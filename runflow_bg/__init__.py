"""runflow-bg: replace the background of product photos through Runflow."""

__version__ = "0.1.0"
