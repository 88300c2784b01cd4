"""Campaigns sent at a set time: the calendar in the database and the scheduler of `serve`."""
