"""Baseline: zipline placing another run's trades by plain ``order_target_percent``.

``FACTORARB_REPLAY`` names a pickle of ``{session: {sid: target_weight}}`` (written
by ``bench_backtest.py`` from the orders of the run it replays: each target weight
is the position after the order, valued at that session's close over the portfolio
value). On each of those sessions every listed asset gets one
``order_target_percent`` call, as a user's algorithm computing the same weights
would send them.
"""

import os
import pickle

import pandas as pd
from zipline.api import order_target_percent, sid


def initialize(context):
    with open(os.environ["FACTORARB_REPLAY"], "rb") as fh:
        context.plan = {pd.Timestamp(k).normalize(): v for k, v in pickle.load(fh).items()}


def handle_data(context, data):
    today = context.get_datetime().tz_localize(None).normalize() \
        if context.get_datetime().tzinfo else context.get_datetime().normalize()
    for s, weight in context.plan.get(today, {}).items():
        order_target_percent(sid(s), weight)
