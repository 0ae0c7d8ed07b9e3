"""Alerts from cron: rules over the analysis database, printed and posted to a chat webhook.

``config`` ([alerts] settings), ``rules`` (pure), ``queries`` (DuckDB reads), ``state`` (what
was announced), ``webhook`` (the HTTP post), ``check`` (ties them together for the CLI).
"""
