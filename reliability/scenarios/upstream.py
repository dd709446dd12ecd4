"""Scenarios of the delivering side: the upstream down, slow, failing, refusing."""
