"""lrm-dist: 3D assets to a trained image-to-3D model, every stage on Ray.

The public API is one plain function per stage (``build_assets``, ``render_assets``, ...), each
importable from its subpackage; ``lrm-dist <stage>`` wraps them.
"""

__version__ = "0.1.0"
