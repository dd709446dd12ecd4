"""Configuration: what the operator writes, checked, and what the processes run.

:mod:`.model` holds the dataclasses and their defaults (the one description
of every setting); :mod:`.file` reads TOML or Logtail's JSON (:mod:`.logtail`)
into them, checking each value by the rules of :mod:`.rules` (built from the
dataclasses), with errors that name the key (:mod:`.report`) and the line
(:mod:`.locate`); :mod:`.snapshot` is the copy the daemon hands the delivery
process. The value types settings are made of live here too: source
networks, machine-group identity, secrets, streamlog layouts.
"""
