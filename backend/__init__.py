"""Ingestion, state, bars, analytics and storage for the pair-analytics dashboard."""
