-- Kept in step with the PostgreSQL migration of the same number (a stored tsvector column for
-- search). SQLite's search is FTS5 (migration 7): nothing to do here.
SELECT 1;
