"""The build as stages in data-flow order, each a typed function with its own cache key, run by :mod:`.driver`.

=============  ===========================================================================================
``load``       the two models split into blocks and frozen; the data split deterministically
``cka``        the large x small CKA matrix on the calibration split (cached)
``candidates`` the stitch candidates the rule picks from the matrix
``tune``       each candidate's adapter initialised by least squares and tuned alone (cached per candidate)
``costs``      accuracy and estimated costs of both anchors and every stitched variant
``decide``     feasibility on the profile and the noise-aware, epsilon-thinned Pareto front
``export``     the shipped variants exported (cached); costs re-read from the exported graphs, decided again
``parity``     every exported variant run by the device runtime and checked against PyTorch
``publish``    reports, checksums, sealed manifest, archive, atomic rename
=============  ===========================================================================================

``analyze`` is the ``analyze`` verb: load, cka and candidates without tuning. ``stage_store`` keys, keeps and restores
stage results; ``cache_store`` is the content-addressed directory under it; ``fingerprint`` digests models and data.
"""
