"""One handler per command or event: load -> decide (domain) -> save -> carry out. They see only the ports."""
