-- pebble:no_transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_body ON notes (body);
