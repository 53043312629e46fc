"""Kafka: the events topic fed from the store's log (the relay), the inbound topic taken in
(the ingest), and the dead letters of what could not be taken in.

Kafka plumbing (clients, topics), serialisation (the Confluent wire format, schema ids) and
the two processes live apart; the domain knows nothing of any of them.
"""


class KafkaError(Exception):
    """Kafka cannot be used as asked: no broker answers, a topic is missing, a setting is wrong."""
