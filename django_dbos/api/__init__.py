"""The ``DBOS`` facade's methods, one mixin per capability (``dbos.py`` composes them).

Each mixin holds only static methods that validate arguments and delegate to ``engine/``.
"""
