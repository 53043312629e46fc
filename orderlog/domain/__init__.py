"""The order domain: the upstream contract, the lifecycle rules and the aggregates.

Nothing in this package does I/O: no database, no Kafka, no files, no clock other
than the record time an aggregate stamps on its own events.
"""
