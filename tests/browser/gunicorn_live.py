"""gunicorn settings for the browser tests' live server (the bind comes on the command line)."""

workers = 1
threads = 64
loglevel = "warning"
