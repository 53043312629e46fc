"""The event store adapter: where records live (SQLite or PostgreSQL) and how they are kept."""
