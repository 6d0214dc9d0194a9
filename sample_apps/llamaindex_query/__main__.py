from sample_apps.llamaindex_query.app import main

raise SystemExit(main())
