"""The experiment families' engines: torch code, imported only by demo workers."""
