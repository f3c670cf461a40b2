"""The scheduler: enqueues due reminders and does housekeeping."""
