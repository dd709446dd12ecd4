"""The filter language of routes, ``receiverctl tail --filter`` and ``search``: one grammar, a Python
predicate, and ClickHouse SQL that agrees with it."""
