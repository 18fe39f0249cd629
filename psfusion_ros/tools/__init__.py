"""Command-line tools built on the FusionPipeline."""
