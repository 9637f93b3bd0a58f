"""Issue 14's attacks, each a test against running services: tokens and roles, the API's
safe defaults, service identities, runner types, secrets."""
