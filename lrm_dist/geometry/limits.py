"""Default size limits of one asset, in one place: ``assets.max_file_mb`` and ``assets.max_faces`` start
here, and the asset stage, the render stage and the mesh loader all receive the configured values."""

MAX_FILE_MB = 500.0
"""Files larger than this are rejected unread (MB)."""

MAX_FACES = 2_000_000
"""Meshes with more faces are rejected."""
