"""What runs on this host: the Docker Engine API, the managed containers and their labels, and
the payload that reports them to the registry."""
