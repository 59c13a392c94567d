"""Ray job entry points (``python jobs/<stage>.py CONFIG``); the shared runner is ``jobs._entry``."""
