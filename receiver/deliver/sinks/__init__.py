"""The sinks, one module (or package) per kind: each turns a group into one upstream request and says
how it went (:class:`receiver.deliver.outcomes.SendOutcome`); none raises for upstream trouble.
Secrets stay inside the sink objects and never reach an outcome's reason (reasons are logged).
:mod:`receiver.deliver.registry` says which kind a ``[[sinks]]`` entry is."""
