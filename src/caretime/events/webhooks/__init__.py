"""Signed webhooks: endpoints, deliveries as dispatch jobs, the Standard Webhooks scheme."""
