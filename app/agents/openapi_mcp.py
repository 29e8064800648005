"""/mcp in the OpenAPI document. FastAPI describes its own routes only; /mcp is the MCP SDK's
ASGI app, so its operations are written here: the opening `initialize` request (whose answer
carries the Mcp-Session-Id header that every later message sends), the session's
server-to-client stream (GET) and its end (DELETE). The messages after `initialize` are MCP's
own JSON-RPC schema (modelcontextprotocol.io), which OpenAPI does not restate."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

MCP_PATH = "/mcp"
SPEC = "https://modelcontextprotocol.io/specification"

_JSON_RPC_ERROR = {
    "type": "object",
    "description": "A JSON-RPC 2.0 error (id null when the request's could not be read)",
    "required": ["jsonrpc", "error"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"type": ["string", "integer", "null"]},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        },
    },
}
_JSON_RPC_REPLY = {
    "type": "object",
    "description": "A JSON-RPC 2.0 response: a result or an error",
    "required": ["jsonrpc"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"type": ["string", "integer", "null"]},
        "result": {"type": "object"},
        "error": _JSON_RPC_ERROR["properties"]["error"],  # type: ignore[index]
    },
}
_INITIALIZE = {
    "type": "object",
    "description": "MCP's initialize request, which opens a session",
    "required": ["jsonrpc", "id", "method"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"type": ["string", "integer"]},
        "method": {"const": "initialize"},
        "params": {
            "type": ["object", "null"],
            "description": "protocolVersion, capabilities and clientInfo (MCP's schema)",
        },
    },
}
SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event: `message`, its data one JSON-RPC message",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
_SESSION = {
    "name": "Mcp-Session-Id",
    "in": "header",
    "required": True,
    "description": "The session the answer to `initialize` named",
    "schema": {"type": "string", "maxLength": 200},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _JSON_RPC_ERROR}},
    }


_REFUSED: dict[str, Any] = {
    "400": _error(
        "Not a JSON-RPC message, a message other than initialize without a session, or a "
        "Content-Type other than application/json"
    ),
    "403": _error("An Origin this server does not answer for"),
    "404": _error("No such session (ended, expired, or never opened): initialize again"),
    "405": _error("Not a method of this path"),
    "406": _error("The client must accept application/json and text/event-stream"),
    "413": {
        "description": "The body is larger than the server's limit (the app's error shape)",
        "content": {
            "application/json": {
                "schema": {"anyOf": [_JSON_RPC_ERROR, {"$ref": "#/components/schemas/ErrorBody"}]}
            }
        },
    },
    "415": _error("Content-Type must be application/json"),
    "421": _error("A Host this server does not answer for (DNS-rebinding protection)"),
    "503": _error("Too many open sessions, or the server is starting or stopping"),
}


def operations() -> dict[str, Any]:
    """The path item for /mcp."""
    common = {"tags": ["agents"], "externalDocs": {"url": SPEC, "description": "MCP"}}
    return {
        "post": common
        | {
            "operationId": "mcp_post",
            "summary": "MCP over streamable HTTP: send a message",
            "description": "The glossary's MCP server (tools search_terms, get_term, "
            "list_experiments, run_experiment; each entry a resource glossary://terms/{slug}). "
            "Open a session with `initialize`; send later messages with its Mcp-Session-Id. "
            "Answers come as JSON or as a stream of server-sent events (progress, then the "
            "reply). Point an MCP client at this URL.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _INITIALIZE}},
            },
            "responses": {
                "200": {
                    "description": "The reply, as JSON or as server-sent events",
                    "headers": {
                        "Mcp-Session-Id": {
                            "description": "The session initialize opened",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {
                        "application/json": {"schema": _JSON_RPC_REPLY},
                        "text/event-stream": {"schema": SSE_EVENT},
                    },
                },
                "202": {"description": "A notification or response, accepted"},
                **_REFUSED,
            },
        },
        "get": common
        | {
            "operationId": "mcp_stream",
            "summary": "MCP over streamable HTTP: the session's stream of server messages",
            "parameters": [_SESSION],
            "responses": {
                "200": {
                    "description": "Server-sent events: notifications and requests",
                    "content": {"text/event-stream": {"schema": SSE_EVENT}},
                },
                "409": _error("The session already has its stream open"),
                **_REFUSED,
            },
        },
        "delete": common
        | {
            "operationId": "mcp_end",
            "summary": "MCP over streamable HTTP: end a session",
            "parameters": [_SESSION],
            "responses": {
                "200": {
                    "description": "Ended (an empty body)",
                    "content": {"application/json": {"schema": {}}},
                },
                **_REFUSED,
            },
        },
    }


def describe(app: FastAPI) -> None:
    """Add /mcp to the app's OpenAPI document when FastAPI builds it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"][MCP_PATH] = operations()
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
