from voicedev.bench.cli import main

main()
