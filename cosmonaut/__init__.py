"""Cosmonaut: watches a Docker host and keeps its HAProxy container's config right."""
