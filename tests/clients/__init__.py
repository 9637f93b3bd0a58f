"""Bob's own clients re-enacted in Python (wendy with climate, the Terraform provider), and
the tests that drive them against a running cluster (issue 13)."""
