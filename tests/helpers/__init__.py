"""Helpers shared by the tests (`from tests.helpers import data`, ...).

Test-only code lives here, never in the product. The two scripts
`mirrored_checks.py` and `paused_training.py` run in their own processes,
started by path.
"""
