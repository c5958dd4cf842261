"""Tenants, API keys, authentication and per-tenant policy."""
