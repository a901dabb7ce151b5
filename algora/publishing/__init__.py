"""The publish pipeline: extract and validate an archive (:mod:`.archive`), check policy, lock
and build the environment, store artifacts, record the version, smoke-test it (:mod:`.smoke`)
(:mod:`.publish`); builds from a model's git repository with their logs (:mod:`.builds`)."""
