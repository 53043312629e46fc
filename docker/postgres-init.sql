-- Runs once, when the PostgreSQL data folder is first made: the views live in their own
-- database beside the event store's, so that a view can be dropped and rebuilt without
-- touching the record.
CREATE DATABASE orderlog_views OWNER orderlog;
