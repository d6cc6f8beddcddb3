"""The lint rules, one module per family; importing this package registers them all.

Each rule is a pure function over a ``LintContext`` (``grammar.lint.model``) registered with
``grammar.lint.registry.rule``. Severity ``error`` is kept for what HAProxy 2.6 itself refuses
(each such rule has a test that runs ``haproxy -c`` on an example); ``warning`` is for what
HAProxy accepts but is most likely a mistake. The reference, with examples, is
``docs/lint-rules.md``.
"""

from grammar.lint.rules import acls, files, keywords, names, routing, servers, structure, tls

__all__ = ["acls", "files", "keywords", "names", "routing", "servers", "structure", "tls"]
