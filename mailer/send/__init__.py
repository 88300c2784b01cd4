"""Sending: the service the CLI and the scheduler call, the pipeline, transports, DKIM, retries."""
