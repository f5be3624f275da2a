-- Cheaper writes (issue #6), measured with benchmarks/bench_sinks.py:
-- * time is served by a BRIN index: events arrive nearly in time order, so a block range summary finds
--   them, and keeping it costs almost nothing per row (the btree on time was a fourth btree insert per
--   row). Ranges are summarised by (auto)vacuum; the newest unsummarised ranges are always scanned.
-- * id, type and subject compare bytewise (COLLATE "C"): they are identifiers and addresses, not prose,
--   and a linguistic collation (even C.UTF-8 before PostgreSQL 17) calls strcoll for every key
--   comparison in the primary key and the subject/type indexes.
-- On a table that already holds rows this rebuilds the indexes (no table rewrite) under an exclusive lock.
DROP INDEX events_time;
CREATE INDEX events_time ON events USING brin (time);

ALTER TABLE events
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN type TYPE text COLLATE "C",
    ALTER COLUMN subject TYPE text COLLATE "C";
