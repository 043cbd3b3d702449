"""The feed: sans-I/O decoding of Binance's wire formats (``wire``), thin socket and REST shells
around it (``streams``, ``rest``), history at start (``history``) and recorded trade files."""
