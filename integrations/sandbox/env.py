"""Print the environment that points the service at the sandbox CRMs (used by `make run`).

source <(python -m integrations.sandbox.env)
"""

from __future__ import annotations

import os
from pathlib import Path

from integrations.sandbox.registry import env_lines

if __name__ == "__main__":
    port = os.environ.get("PORT", "8000")
    public = os.environ.get("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    directory = Path(os.environ.get("SANDBOX_DIR", "var/sandbox")).resolve()
    print("\n".join(env_lines(public, directory)))
