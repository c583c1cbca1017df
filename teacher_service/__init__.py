"""ELF-VLA: teacher_service."""
