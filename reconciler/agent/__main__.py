"""``python3 agent.pyz`` and ``python3 -m reconciler.agent``: run the agent."""

import sys

from reconciler.agent.main import main

sys.exit(main())
