"""ELF-VLA: scorer."""
