"""optimize layer of zipline-factorarb."""
