"""Ingestion: the Segment-compatible tracking API."""
