"""Talking to Lambda-Registry: in process or over HTTP (with its auth), and polling a table's
config."""
