"""Exchange agreements, one TOML file each in this folder, read and checked by :mod:`.terms`."""
