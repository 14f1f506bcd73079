"""Infrastructure: the embedded Redis, local Redis discovery, the microcache, logs,
metrics counting and the gunicorn settings."""
