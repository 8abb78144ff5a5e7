"""The service layer: every rule of starting, continuing, deciding, reconciling and expiring,
shared by every front end (the CLI, the HTTP API and web inbox, the remote CLI)."""
