"""The ``zstc`` command line: option parsing and reporting only; the work happens in the layers below."""


def main() -> None:
    """The console script's entry point (``zstc``); imports the app only when called."""
    from zstc_cli.cli.app import main as run

    run()
