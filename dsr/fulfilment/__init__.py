"""Fulfilment: finding, exporting, erasing and correcting a requester's data across the business's
systems. It builds on the request lifecycle through its services; the request core (dsr) never
imports it."""
