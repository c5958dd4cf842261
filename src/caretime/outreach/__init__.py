"""Outreach: patient batches in, a legal and feasible call schedule out, calls carried out."""
