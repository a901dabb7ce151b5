"""Several gateway processes on one port: ``algora serve --workers N`` (see :mod:`.processes`)."""
