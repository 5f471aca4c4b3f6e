"""The training engine: train library, fit loop, checkpoints and exact resume,
callbacks, distribution."""
