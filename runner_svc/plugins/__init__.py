"""A run's plugins: where they are (directory, looked up in entities) and the resources
fetched from them and artifacts uploaded to them (transfer)."""
