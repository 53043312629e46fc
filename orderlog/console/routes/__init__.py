"""The console's pages, one module each; ROUTERS is what the application mounts."""

from orderlog.console.routes import analytics, audit, orders, queue, signin, sources, stock, users

ROUTERS = [
    signin.router,
    queue.router,
    orders.router,
    stock.router,
    analytics.router,
    audit.router,
    users.router,
    sources.router,
]
