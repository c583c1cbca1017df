"""ELF-VLA: cluster."""
