"""Caps and limits (issue 10): each attack on a real cluster, with its counts."""
