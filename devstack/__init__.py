"""The local stack: moto server, bootstrap, the Chalice app over HTTP, event emulation."""
