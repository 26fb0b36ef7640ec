"""Credentials: source write keys (ingestion) and API tokens (reading and managing)."""
