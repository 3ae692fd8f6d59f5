"""Hypothesis profiles for the unit suite.

- ``default``: what every run of the suite uses; sized so that the stateful law test
  (test_core_laws.py) stays well under a minute.
- ``long``: ``pytest tests/unit --hypothesis-profile=long`` for a deeper search before a
  release or after touching ``tables/``. The profile is registered here, so name
  ``tests/unit`` (or a file in it) on the command line: pytest only reads this file before
  the hypothesis plugin loads the profile when the directory is one of the arguments.

``deadline=None``: one step of the state machine drains a whole cascade of messages, whose
run time varies far more than hypothesis' per-example deadline tolerates.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("default", max_examples=200, stateful_step_count=40, deadline=None)
settings.register_profile("long", max_examples=3000, stateful_step_count=80, deadline=None)
