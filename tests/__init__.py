"""sweeper's tests (a package, so that ``tests.support`` imports from tests and benchmarks)."""
