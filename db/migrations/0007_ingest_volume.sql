-- Ingest at the UK fleet's rate (BENCHMARKS.md, `make bench`): every heartbeat batch updates one
-- `device_state` row per device. With room left on each page the update is HOT (heap-only:
-- no new index entries, since no indexed column changes), so the table neither bloats its
-- indexes nor costs an index insert per heartbeat. New and rewritten pages keep half free.
ALTER TABLE device_state SET (fillfactor = 50);
