from postroom.cli import main

raise SystemExit(main())
