"""Stage modules of the alignment package (each declares NAME, Config, INPUTS and run; see
medalign/stage.py). The list of stage kinds is :data:`medalign.registry.BUILTIN_STAGES`."""
