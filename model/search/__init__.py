"""Retrieval over a run's embeddings: indexes, queries, partner ranks, metrics, and why a result came back."""
