"""caretime: scheduling and outreach engine for healthcare operations."""
