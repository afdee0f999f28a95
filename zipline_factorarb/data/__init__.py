"""data layer of zipline-factorarb."""
