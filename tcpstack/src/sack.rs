//! SACK: receiver-side block reporting (RFC 2018) and the sender scoreboard (RFC 6675).
