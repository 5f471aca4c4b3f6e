"""Quality and speed tooling; measurement variants are built here."""
