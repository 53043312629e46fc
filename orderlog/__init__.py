"""orderlog: an event-sourced order lifecycle engine.

This package's __init__ imports nothing on purpose: `python -m orderlog.audit_verify`
must run with only the standard library and `cryptography` installed.
"""

__version__ = "0.1.0"
