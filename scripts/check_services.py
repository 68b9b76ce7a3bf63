"""Before the suite: say clearly when PostgreSQL or Redis cannot be reached, instead of 500 errors."""

from __future__ import annotations

import os
import sys

import dj_database_url
import psycopg
import redis


def main() -> int:
    problems = []
    database_url = os.environ["DATABASE_URL"]
    config = dj_database_url.parse(database_url)
    if config["ENGINE"].endswith("postgresql"):
        try:
            psycopg.connect(
                host=config.get("HOST") or "127.0.0.1",
                port=config.get("PORT") or 5432,
                user=config.get("USER") or "postgres",
                password=config.get("PASSWORD") or None,
                dbname="postgres",
                connect_timeout=5,
            ).close()
        except psycopg.Error as exc:
            problems.append(
                f"PostgreSQL at {config.get('HOST')}:{config.get('PORT')} cannot be reached ({exc}). "
                "Start it or set DATABASE_URL."
            )
    try:
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {os.environ['REDIS_URL']} cannot be reached ({exc}). Start it or set REDIS_URL.")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
