"""What `python -m benchmarks.run` measures (docs/performance.md); finished experiments: docs/experiments.md."""
