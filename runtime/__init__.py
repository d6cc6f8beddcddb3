"""The edges: reconcile, stores, the compile pipeline, the Lambda handler and the CLI."""
