"""Fulfilment's models: none yet."""
