"""One module per `elf-vla` subcommand. Each defines `NAME`, `HELP`, `add_arguments(parser)` and
`run(args) -> int`, and imports its heavy dependencies (torch, ray) inside `run`, so that
`elf-vla --help` and light commands such as `score` start fast."""
