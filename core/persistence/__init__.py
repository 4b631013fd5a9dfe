"""Where data lives: the database, artifact storage, tenancy, reuse caches and migrations."""
