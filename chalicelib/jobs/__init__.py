"""Event handlers' bodies, one job per handler: archiver, rollups, scaling report, realtime (WAMP), alerts, live."""
