"""Read-model projectors (inventory holds, the exception queue, cancellation analytics,
order status) will live here, one module per view plus the runner.

They stand on what the write side already provides: the store's notification log in
commit order (`OrderLog.database.log_rows`), the eventsourcing library's tracking tables
for exactly-once positions, event time (`occurred_at`) on every record for SLA rules, and
the records' hashes, which every view row can carry.
"""
