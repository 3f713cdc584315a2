from tunelab.cli.commands import main

main()
