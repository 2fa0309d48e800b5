-- Kept in step with the SQLite migration of the same number, which fixes an index of
-- apalis-sqlite's queue table. PostgreSQL's queue tables (schema `apalis`) are set up by
-- apalis-postgres after our migrations and plan its ack query well: nothing to do here.
SELECT 1;
