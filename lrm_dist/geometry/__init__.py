"""Geometry shared by every stage: the canonical frame, cameras, inside tests, sampling, occupancy grids."""
