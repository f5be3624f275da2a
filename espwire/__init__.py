"""espwire: email and engagement provider webhooks in, one clean CloudEvents stream out."""

__version__ = "0.1.0"
