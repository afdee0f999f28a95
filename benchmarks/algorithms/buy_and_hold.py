"""Baseline: zipline alone. Equal weights over the bundle's stocks, set by plain
``order_target_percent`` calls on the first session of each month."""

from zipline.api import order_target_percent


def initialize(context):
    context.month = None


def handle_data(context, data):
    today = context.get_datetime()
    if context.month == today.month:
        return
    context.month = today.month
    finder = context.asset_finder
    stocks = [a for a in finder.retrieve_all(finder.sids) if data.can_trade(a)]
    for asset in stocks:
        order_target_percent(asset, 1.0 / len(stocks))
