"""Jobs and the runs they become, as far as ownership goes: taken from the queue through
slots (consumer, slots), claimed in entities and held by lease renewals on the heartbeat
(claims, leases, heartbeat, node), tracked while they execute here (active), reached by
control commands (control), and the containers no run owns any more swept (orphans)."""
