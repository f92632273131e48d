"""sweeps: Hydra configs, validation, job identity, the job -> engine adapter and the Parquet store.

``inal-sweep`` (``sweeps.run:main``) composes one config per grid cell from ``sweeps/conf/``;
``sweeps.validation.validate_job`` checks it into a ``sweeps.jobs.JobSpec``; ``sweeps.execute``
calls ``inal_core`` and ``sweeps.store.ResultsStore`` writes the ``runs``, ``curves`` and
``inal`` Parquet datasets. No Ray here: the launcher lives in ``hydra_plugins/inal_ray_launcher``.
"""
