"""pipeline layer of zipline-factorarb."""
