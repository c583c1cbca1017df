"""ELF-VLA: learner."""
