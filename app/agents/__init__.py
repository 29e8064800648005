"""The glossary for agents: one MCP server (app/agents/server.py) over two transports.

- stdio: `glossary mcp` (app/agents/over_stdio.py) opens the database read-only and starts
  its own demo workers; every run it asks for counts as the one client "mcp-stdio".
- streamable HTTP at /mcp (app/agents/over_http.py), inside the web app: the app's database
  and the app's DemoRunner, so runs share the web demo's cache, per-client cap (the client is
  the peer address, as for /api/demo), fair queue and budget.
"""
