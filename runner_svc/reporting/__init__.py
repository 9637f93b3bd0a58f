"""What a run says: its events to bob.events (reporter), its steps' output split into log
lines (logsink), a copy of its log for its logger plugin (logger_copy), and the runner's
own log lines about it (runlog)."""
