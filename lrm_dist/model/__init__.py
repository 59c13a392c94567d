"""The LRM (OpenLRM v1.1 architecture): encoder, camera embedder, triplane transformer, renderer, weights I/O.

Import the pieces from their modules (``lrm_dist.model.lrm.LRM``, ``lrm_dist.model.pretrained``); this
package's ``__init__`` stays free of torch so that configs import fast.
"""
