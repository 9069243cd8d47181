"""A real PostgreSQL server for the tests, run as the `postgres` user (it refuses root)."""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from twoi2c_hub.localhub import TAG_VARIABLE
from twoi2c_hub.network import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresServer:
    def __init__(self, tag: str):
        account = pwd.getpwnam("postgres")
        self.directory = Path(tempfile.mkdtemp(prefix="twoi2c-pg-"))
        os.chown(self.directory, account.pw_uid, account.pw_gid)
        as_postgres = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[], cwd=self.directory)
        subprocess.run(
            [
                BIN / "initdb",
                "-D",
                self.directory / "data",
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **as_postgres,
        )
        self.port = free_port()
        self.tag = tag
        self.as_postgres = as_postgres
        self.start()

    def start(self) -> None:
        """Start the server (again) on its data directory and port; return once it answers."""
        import psycopg

        self.process = subprocess.Popen(
            [
                BIN / "postgres",
                "-D",
                self.directory / "data",
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.directory}",
                "-c",
                "fsync=off",
            ],
            stdout=open(self.directory / "postgres.log", "ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, TAG_VARIABLE: self.tag},
            **self.as_postgres,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url("postgres").replace("postgresql+psycopg", "postgresql")).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError((self.directory / "postgres.log").read_text()) from None
                time.sleep(0.1)

    def restart(self, down: float = 0) -> None:
        """Stop the server as a node upgrade does (a fast shutdown: open connections are
        ended), leave it down `down` seconds, and start it again on the same port."""
        self.process.send_signal(2)
        self.process.wait(30)
        time.sleep(down)
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(
            self.url("postgres").replace("postgresql+psycopg", "postgresql"), autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self):
        self.process.send_signal(2)  # SIGINT: fast shutdown
        self.process.wait(30)
        shutil.rmtree(self.directory, ignore_errors=True)
