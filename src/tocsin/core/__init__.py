"""The pure domain: no I/O, no framework imports. Decisions take `now` as an argument."""
