"""Data in and jobs: readers, converters, synthetic generator, entrypoints."""
