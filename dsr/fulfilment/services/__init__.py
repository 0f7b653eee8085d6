"""Fulfilment's services: the only writers of fulfilment's models, as dsr.services are for requests."""
