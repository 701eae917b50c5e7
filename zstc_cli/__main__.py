from zstc_cli.cli.app import main

main()
