"""gunicorn settings for the tests' live server (the bind comes on the command line): the
production worker type, one worker."""

workers = 1
worker_class = "gevent"
worker_connections = 1000
loglevel = "warning"
