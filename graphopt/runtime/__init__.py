"""Where runs happen: the sandbox (worker processes) for candidate code.

Nothing is imported here, so the graph layer can load ``graphopt.runtime.sandbox`` (a package
that needs only the standard library and ``graphopt.errors``) without pulling in other layers.
"""
