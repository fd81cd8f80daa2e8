"""On-device personal assistant runtime."""
__version__ = "0.1.0"
