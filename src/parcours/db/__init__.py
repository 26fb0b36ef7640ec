"""Database plumbing: engine/session factories, base class, portable column types, migrations."""
