"""The store: typed records, the id ledger, exact resampling (Binance kline semantics) and the
one lock-guarded owner of ticks, live bars, marks and quotes (``TickStore``)."""
