"""Names and strings spliced into DuckDB SQL text where a parameter cannot go (ATTACH paths,
table names): quoted, so a quote in a path or name is data, never SQL."""

from __future__ import annotations


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
