"""zipline extension file: registers the zipline-factorarb bundles.

Use it without installing the extension::

    zipline -e bundles/extension.py ingest -b factorarb-sample

or run ``factorarb install-extension`` once so that plain ``zipline`` finds
the bundles through ``$ZIPLINE_ROOT/extension.py``.
"""

from zipline_factorarb.data.register import register_bundles

register_bundles()
