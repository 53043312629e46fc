"""The operations console: the exception queue, orders, holds, analytics and audit, on a web page.

A map:
- roles.py: what each role may do (the one table the pages and the tests read);
- security.py: sessions, CSRF tokens, the sign-in throttle, response headers;
- guard.py: how a route declares the permission it needs, checked before it runs;
- routes/: one module per page (signin, queue, orders, stock, analytics, audit, users);
- charts.py: bar charts drawn as SVG on the server (no script, no CDN);
- app.py: assembles them around one service (orderlog.application) and one view store.

It reads through the service layer and the views' report functions, never its own SQL over
the event store, and records people's actions as the command line does.
"""
