"""Runs started by something other than a user: schedules, notifications (issue 11)."""
