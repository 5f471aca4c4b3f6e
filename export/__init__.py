"""SavedModel export for TF Serving, and checks of exported models."""
