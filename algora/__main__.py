from algora.cli.main import main

main()
