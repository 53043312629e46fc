"""Which aggregate holds which stream kind."""

from orderlog.domain.customer import Customer
from orderlog.domain.order import Order
from orderlog.domain.source import Source
from orderlog.domain.stock import Stock
from orderlog.domain.stream import StreamAggregate

STREAMS: dict[str, type[StreamAggregate]] = {cls.STREAM: cls for cls in (Order, Stock, Customer, Source)}
