"""The pure core: payload models, the HAProxy AST, lowering and the printer. No I/O."""
