"""A fake SMTP server for tests, on 127.0.0.1: it keeps every message it accepts.

    async with FakeSmtp() as smtp:
        settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port,
                                               "smtp_starttls": False})

`failing = True` makes it refuse every message (451 after MAIL FROM) until it is set back. It
speaks just enough SMTP for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

from fake_server import LoopbackServer

__all__ = ["FakeSmtp", "Received"]


@dataclass
class Received:
    """One accepted message: envelope sender, recipients and the parsed message."""

    mail_from: str
    rcpt_to: list[str]
    message: EmailMessage = field(repr=False)

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())


class FakeSmtp(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.received: list[Received] = []
        self.logins: list[tuple[str, str]] = []
        self.refused = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        mail_from, rcpt_to = "", []
        await say("220 fake-smtp ESMTP ready")
        while line := await reader.readline():
            command = line.decode().rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                await say("250-fake-smtp")
                await say("250 AUTH PLAIN")
            elif verb == "HELO" or verb == "NOOP":
                await say("250 ok")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(command.split()[2]).decode().split("\0")
                self.logins.append((user, password))
                await say("235 2.7.0 authenticated")
            elif verb == "MAIL":
                if self.failing:
                    self.refused += 1
                    await say("451 4.3.0 try again later")
                    continue
                mail_from, rcpt_to = command.split(":", 1)[1].strip().strip("<>"), []
                await say("250 ok")
            elif verb == "RCPT":
                rcpt_to.append(command.split(":", 1)[1].strip().strip("<>"))
                await say("250 ok")
            elif verb == "DATA":
                await say("354 end with .")
                data = bytearray()
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                parsed = email.message_from_bytes(bytes(data), policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                self.received.append(Received(mail_from, list(rcpt_to), parsed))
                await say("250 queued")
            elif verb == "RSET":
                mail_from, rcpt_to = "", []
                await say("250 ok")
            elif verb == "QUIT":
                await say("221 bye")
                break
            else:
                await say("502 command not implemented")
