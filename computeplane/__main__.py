from computeplane.cli import main

main()
