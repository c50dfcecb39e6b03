"""Event handlers' bodies: archiver, rollups, reports."""
