"""The database: one connection per process, its transactions, its schema and migrations."""
