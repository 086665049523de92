"""Small file-system helpers shared by the writers of tables and weights."""

from __future__ import annotations

import os


def default_file_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask); mkstemp's is 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
