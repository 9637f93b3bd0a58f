"""Issue 10 limits: each attack on a cap, against real running services, with its counts."""
