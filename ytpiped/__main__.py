from __future__ import annotations

from ytpiped.cli import main

raise SystemExit(main())
