"""The lint rules, one module per family. Importing this package registers them all."""

from grammar.lint.rules import acls, keywords, names, routing, servers, structure

__all__ = ["acls", "keywords", "names", "routing", "servers", "structure"]
