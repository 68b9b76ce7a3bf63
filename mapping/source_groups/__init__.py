"""The source groups the mapping app owns: prospect (with custom attributes), UTM, engagement.

Other apps register theirs (the scoring app's "score") through :mod:`mapping.sources`.
"""

from __future__ import annotations


def register_builtin_groups() -> None:
    from mapping.source_groups import engagement, prospect, utm

    prospect.register()
    utm.register()
    engagement.register()
