"""The build cache: a stage's result kept under a hash of its inputs and reused on a hit.

``stages`` keys, keeps and restores stage results (:class:`~.stages.StageCache`, each stage's
:class:`~.stages.StageKey`); ``disk`` is the content-addressed directory under it (:class:`~.disk.DiskCache`);
``fingerprint`` digests the models, the data and the code that a key covers.
"""
