"""`facenet` subcommands that run Prefect flows; each module offers `register(subparsers)`."""
