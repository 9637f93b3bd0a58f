"""The runner: takes jobs from the queue at its capacity, runs them with the executor of
its runner type, reports every step as events, and obeys the control fanout."""
