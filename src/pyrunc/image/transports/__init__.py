"""Image transports: one module per transport name (transport.py loads them lazily)."""
