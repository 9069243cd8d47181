"""The usage-accounting hub service (mounted at /services/usage/)."""
