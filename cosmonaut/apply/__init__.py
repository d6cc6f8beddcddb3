"""Putting a config into the HAProxy container: a checked reload, or runtime-API updates of
pre-allocated server slots, and draining servers."""
