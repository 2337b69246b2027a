"""Outgoing webhooks (E2): publishers and admins subscribe URLs to event types; deliveries
are signed (Standard Webhooks), retried with backoff, and their history is kept."""
