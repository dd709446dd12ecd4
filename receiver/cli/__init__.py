"""Command-line entry points: ``receiver`` (the daemon) and ``receiverctl`` (admin)."""
