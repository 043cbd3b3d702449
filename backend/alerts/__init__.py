"""Alerts that reach the trader: rules and channels from one TOML file (``rules``), evaluated on
the engine's pair service, delivered to webhooks, Telegram and e-mail."""
