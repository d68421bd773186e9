"""The command line: thin commands over the pipeline and the generators. Heavy imports live inside
the commands that need them so `rubricate --help` answers at once."""
