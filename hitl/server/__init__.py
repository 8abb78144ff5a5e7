"""The HTTP service: the approval service's operations over HTTP, a web inbox, background
runs that survive restarts, tokens and roles, signed webhooks."""
