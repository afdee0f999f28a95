"""Importing this module registers the zipline-factorarb bundles.

It is what ``factorarb install-extension`` puts into
``$ZIPLINE_ROOT/extension.py``, and it can be named directly:
``zipline -e zipline_factorarb.extension ingest -b factorarb-sample``.
"""

from zipline_factorarb.data.register import register_bundles

register_bundles()
