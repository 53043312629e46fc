"""Which aggregate holds which stream kind: every aggregate, registered as it is defined."""

from orderlog.domain.account import Account
from orderlog.domain.clock import Clock
from orderlog.domain.customer import Customer
from orderlog.domain.order import Order
from orderlog.domain.sku import Sku
from orderlog.domain.source import Source
from orderlog.domain.stream import StreamAggregate

STREAMS: dict[str, type[StreamAggregate]] = StreamAggregate.by_stream
"""stream kind -> aggregate: `order` Order, `sku` Sku, `customer` Customer, `source` Source, `clock` Clock,
`account` Account."""

__all__ = ["STREAMS", "Account", "Clock", "Customer", "Order", "Sku", "Source"]
