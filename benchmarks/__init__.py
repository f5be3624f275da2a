"""espwire benchmarks: `python -m benchmarks.run --mode quick|full` (see benchmarks/README.md)."""
