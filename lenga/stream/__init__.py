"""The queries: ingest (Kafka or files -> the four core tables), aggregation (light curves ->
objects, features, classes), distribution (filtered streams to Kafka), batch reclassification, and
the sources and steps they use (docs/architecture.md)."""
