"""The readers' side over HTTP: unsubscribe, confirm, subscribe, the archive and its feed."""
