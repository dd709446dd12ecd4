"""The running daemon: listeners, the spool writer and the delivery process started, reloaded and
stopped together (:mod:`.lifecycle`), the control API (:mod:`.control`), Prometheus (:mod:`.metrics`),
systemd (:mod:`.systemd`) and self-protection (:mod:`.guard`)."""
