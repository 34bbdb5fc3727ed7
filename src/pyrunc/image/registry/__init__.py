"""A client of the registry HTTP API v2 (the distribution spec), as
containers/image's docker/ package speaks it: client.py (requests, TLS,
retries, redirects), auth.py (challenges, bearer tokens, auth files),
certs.py (certs.d), errors.py (registry and network failures as one line).
The docker:// transport (image/transports/docker.py) is built on it."""
