"""`make deploy`: the cluster on hosts named by an Ansible inventory.

The Ansible side (ansible.cfg, site.yml, roles/) brings each host to its state over SSH;
this package is what runs on the operator's machine around it (`python -m deploy`): the
inventory check before any host is touched, the wheels, the local secrets (broker and
database passwords, the cluster CA and certificates, the secret-store key, the admin
token), and the check of the running cluster at the end.
"""
