"""research layer of zipline-factorarb."""
