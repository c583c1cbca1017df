"""ELF-VLA: actors."""
