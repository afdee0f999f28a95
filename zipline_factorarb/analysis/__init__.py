"""analysis layer of zipline-factorarb."""
