"""`facenet` subcommands that need no orchestration; each module offers `register(subparsers)`."""
