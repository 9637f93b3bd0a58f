"""The deploy tests: test hosts (network namespaces with their own sshd) and `make deploy`."""
