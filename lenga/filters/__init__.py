"""Filtered output streams: user filters over the enriched alert, published to Kafka.

- ``config``: the filters file (``conf/filters.yaml``) and the ``filters:`` configuration section;
- ``predicate``: compiling a filter's Spark SQL predicate against the enriched alert's schema;
- ``reload``: re-reading the file at every micro-batch, keeping the last valid version;
- ``watchlist``: cone match of alerts against user coordinates;
- ``payloads``: the versioned Avro schemas (``schemas/``) and message encoding;
- ``registry``: schema registration with a Confluent-compatible registry.

The distribution query that runs them is ``lenga.stream.distribute``.
"""
