from sample_apps.router.app import main

raise SystemExit(main())
