from viltbridge.cli import main

main()
