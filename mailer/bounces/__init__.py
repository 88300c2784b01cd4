"""Bounces and mailed unsubscribes: where they arrive, how they are read, what they change."""
