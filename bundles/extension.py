"""zipline extension file: registers the zipline-factorarb bundles.

Use it without installing the extension::

    zipline -e bundles/extension.py ingest -b factorarb-sample

or run ``factorarb install-extension`` once so that plain ``zipline`` finds
the bundles through ``$ZIPLINE_ROOT/extension.py``. To add your own
CSV/Parquet bundles, copy this file and add lines such as::

    from zipline_factorarb import register_csv_bundle
    register_csv_bundle("my-etfs", "~/data/etfs")
"""

import zipline_factorarb.extension  # noqa: F401  (registers the bundles)
