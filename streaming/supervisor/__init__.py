"""The media supervisor: reconciles what PostgreSQL says should run with the media engine.

``jobs.py`` reads the desired state, ``embedded.py`` and ``mediamtx.py`` run it on an
engine and report what they observe, ``loop.py`` ties them to the database (heartbeat,
statuses, metrics) and survives the database going away.
"""
