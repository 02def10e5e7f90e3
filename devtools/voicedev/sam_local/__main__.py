from voicedev.sam_local.run import main

raise SystemExit(main())
