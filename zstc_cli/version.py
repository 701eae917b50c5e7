"""The version, in a module of its own: the package's commands import it without importing the package's front door."""

__version__ = "0.1.0"
