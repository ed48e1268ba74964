"""The build as stages in data-flow order, each a typed function with its own cache key, run by :mod:`.driver`.

=============  ===========================================================================================
``load``       the two models split into blocks and frozen; the data split deterministically
``screen``     costs of both anchors and every possible stitch per profile, before CKA: what each can run
``cka``        the large x small CKA matrix on the calibration split (cached)
``candidates`` the stitch candidates the rule picks from the matrix
``tune``       each candidate's adapter initialised by least squares and tuned alone (cached per candidate)
``costs``      accuracy of both anchors and every stitched variant, with the costs ``screen`` estimated
``decide``     feasibility on the profile and the noise-aware, epsilon-thinned Pareto front
``export``     the shipped variants exported (cached); costs re-read from the exported graphs, decided again
``parity``     every exported variant run by the device runtime and checked against PyTorch
``publish``    reports, checksums, sealed manifest, archive, atomic rename
=============  ===========================================================================================

``driver`` runs them for one profile or a fleet (shared load, CKA and tuning; the rest per profile), each stage called
by name, and passes the records of :mod:`.state` between them; ``executor`` runs the jobs (each candidate's tuning,
each profile's export + parity) in process or as Ray tasks. ``analyze`` is the ``analyze`` verb: load, cka and
candidates without tuning. ``cache/`` keys, keeps and restores stage results; ``build_memory`` is the build machine's
memory budget (one batch affordable, where tuning keeps its feature store).
"""
