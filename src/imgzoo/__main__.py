from imgzoo.cli import main

raise SystemExit(main())
