"""Spark plumbing: Kafka and file sources, the embedded broker, Delta storage, sessions."""
