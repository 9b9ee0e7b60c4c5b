"""The core's own plugins: risk rules, the SQLite state store and the buy-and-hold baseline."""
