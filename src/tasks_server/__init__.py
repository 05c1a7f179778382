"""Tasks Server: a self-hosted service that fires HTTP requests later, reliably."""

__version__ = "0.1.0"
