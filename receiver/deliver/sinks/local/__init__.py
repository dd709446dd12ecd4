"""The local sink: an embedded ClickHouse (chDB) in the delivery process (:mod:`.store`), its queries
served to receiverctl on a UNIX socket (:mod:`.server`), an older release's SQLite store imported once
(:mod:`.sqlite_import`)."""
