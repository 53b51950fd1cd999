"""The studies the suite reproduces, one module each: the papers' names and numbers, and
their own tables. A module here that defines `STUDY = dsbench.hooks.Study(...)` is found by
the core (tags for its runs, its report in every analysis); no stage imports it by name."""
