"""Inference and serving: image -> triplanes -> mesh (GLB/PLY/OBJ), the ``infer`` CLI and the Ray Serve app."""
