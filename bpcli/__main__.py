from bpcli.cli import main

main()
