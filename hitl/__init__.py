"""The service layer and the CLI: the one place a graph meets storage, shared by every front end."""
