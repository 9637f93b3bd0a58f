"""Issue 10: hostile builds and bad input hurt only themselves (caps, limits, no hangs)."""
