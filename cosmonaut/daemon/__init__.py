"""The daemon: engine events, debounced into batches, each batch one reconcile pass."""
