"""Alibaba Cloud Log Service (SLS) PutLogs, written from the wire facts in sls.md.

Three small parts, none of which does I/O: :mod:`.auth` (credentials and the
v1/v4 signatures), :mod:`.request` (endpoint forms and one signed, compressed
request) and :mod:`.errors` (what an answer means for delivery). The sink in
:mod:`receiver.deliver.registry` sends the request; the official SDK is only a
test oracle, never imported here.
"""
