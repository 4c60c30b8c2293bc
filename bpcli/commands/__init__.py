"""One module per command; each function raises ``BpError`` for bad input."""
