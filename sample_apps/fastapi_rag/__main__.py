from sample_apps.fastapi_rag.app import main

raise SystemExit(main())
