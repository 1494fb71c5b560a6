"""GT-Vision benchmark suite: ``.venv/bin/python -m bench`` (see ``docs/benchmarks.md``).

Each benchmark is a module with ``run(ctx) -> Section``: ``recording``, ``clips``, ``index``,
``events``, ``stream_start``; ``report`` writes the markdown.
"""
