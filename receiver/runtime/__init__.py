"""What every process of the appliance shares: set-up, configuration loading, a UNIX-socket HTTP server."""
