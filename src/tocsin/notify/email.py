"""Email over SMTP with the standard library: plain, STARTTLS or implicit TLS, optional login.

Every message carries a Message-ID derived from its idempotency key, so a message sent twice
(a retry after a lost reply, a sender killed mid-send) is the same message to the receiving
mail system, and the key itself in `X-Tocsin-Idempotency-Key` for filters and tests.

payload["email"] = {"html": str | None, "thread": str | None} adds an HTML alternative to the
text, and puts the message in a thread: every message of thread "incident-42" answers the same
root Message-ID (In-Reply-To and References), derived from the thread's name. The root itself
is never sent, as with other tools' notification mail; clients thread on the reference alone.

SMTP says which failures are worth retrying: 4xx replies are transient, 5xx are permanent.
A server that cannot be reached or drops the connection is retried.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, Literal

from tocsin.notify.base import DeliveryError, OutgoingMessage

TlsMode = Literal["none", "starttls", "ssl"]
TLS_MODES: tuple[TlsMode, ...] = ("none", "starttls", "ssl")
MESSAGE_ID_DOMAIN = "tocsin"
# RFC 5322 atext less "=", which escapes everything else (and "." is handled apart).
_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/?^_`{|}~"
)


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    """How to reach the SMTP server (config section `channels.email`)."""

    host: str
    from_address: str
    port: int = 25
    tls: TlsMode = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    # Verify the server's certificate (STARTTLS and SSL); ca_file adds a private CA.
    verify: bool = True
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, not {self.tls!r}")
        if not self.host:
            raise ValueError("host is required")
        if "@" not in parseaddr(self.from_address)[1]:
            raise ValueError(f"from must be an email address, not {self.from_address!r}")


def message_id(key: str) -> str:
    """Return the Message-ID for an idempotency key: the same key, the same id.

    The left part must be an RFC 5322 dot-atom. Characters outside it (and "=") become
    "=XX" per UTF-8 byte, which keeps distinct keys distinct; dots stay unless they would
    break the dot-atom (leading, trailing, doubled), in which case every dot is escaped.
    """

    def escape(char: str) -> str:
        return "".join(f"={byte:02X}" for byte in char.encode())

    def local(keep_dots: bool) -> str:
        return "".join(c if c in _ATEXT or (keep_dots and c == ".") else escape(c) for c in key)

    left = local(keep_dots=True)
    if not left or left.startswith(".") or left.endswith(".") or ".." in left:
        left = local(keep_dots=False)
    return f"<{left or '=00'}@{MESSAGE_ID_DOMAIN}>"


def thread_id(thread: str) -> str:
    """Return the root Message-ID every message of a thread refers to."""
    return message_id(f"thread:{thread}")


def _one_line(text: str) -> str:
    # Header values may not contain line breaks (header injection); fold them to spaces.
    return " ".join(text.split())


class EmailChannel:
    """Send each message in its own SMTP session (thread-safe: nothing is shared)."""

    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def build(self, message: OutgoingMessage) -> EmailMessage:
        """Return the email for a message: text, optional HTML, optional thread references."""
        email = EmailMessage()
        try:
            email["From"] = self.settings.from_address
            email["To"] = message.destination
            email["Subject"] = _one_line(message.title) or "Tocsin"
        except ValueError as exc:
            raise DeliveryError(f"cannot address the email: {exc}", retryable=False) from exc
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = message_id(message.key)
        email["X-Tocsin-Idempotency-Key"] = _one_line(message.key)
        # Automated mail: out-of-office responders must not answer it (RFC 3834).
        email["Auto-Submitted"] = "auto-generated"
        options = _options(message.payload)
        thread = options.get("thread")
        if isinstance(thread, str) and thread:
            root = thread_id(thread)
            email["In-Reply-To"] = root
            email["References"] = root
        email.set_content(message.body or message.title)
        # payload["html"] is where pages of the on-call release put it.
        html = options.get("html") or message.payload.get("html")
        if isinstance(html, str) and html:
            email.add_alternative(html, subtype="html")
        return email

    def send(self, message: OutgoingMessage) -> str | None:
        """Hand the message to the SMTP server; return its Message-ID."""
        recipient = parseaddr(message.destination)[1]
        if "@" not in recipient:
            raise DeliveryError(f"{message.destination!r} is not an email address", retryable=False)
        email = self.build(message)
        sender = parseaddr(self.settings.from_address)[1]
        try:
            with self._session() as smtp:
                smtp.send_message(email, from_addr=sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            raise _reply_error(f"recipient {recipient} refused", code, reply) from exc
        except smtplib.SMTPResponseException as exc:
            raise _reply_error("SMTP server refused", exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # The server lacks what the settings ask for (STARTTLS, AUTH): fix the config.
            raise DeliveryError(f"SMTP server does not support it: {exc}", retryable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Unreachable, timed out, TLS handshake failed, connection dropped: try again.
            host = f"{self.settings.host}:{self.settings.port}"
            detail = str(exc) or type(exc).__name__
            raise DeliveryError(f"SMTP server {host}: {detail}", retryable=True) from exc
        return str(email["Message-ID"])

    @contextmanager
    def _session(self) -> Iterator[smtplib.SMTP]:
        s = self.settings
        context = _tls_context(s) if s.tls != "none" else None
        smtp: smtplib.SMTP
        if s.tls == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.tls == "starttls":
                smtp.starttls(context=context)
            if s.username:
                smtp.login(s.username, s.password or "")
            yield smtp
        finally:
            # The message is accepted once DATA is answered; a failing QUIT must not turn a
            # delivered message into a failure (and a duplicate on retry).
            with suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()


def _options(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    options = payload.get("email")
    return options if isinstance(options, Mapping) else {}


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reply_error(what: str, code: int, reply: bytes | str) -> DeliveryError:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    # 4xx: try again later (greylisting, mailbox busy, 421 closing); 5xx: never.
    return DeliveryError(f"{what}: {code} {text}".strip(), retryable=not 500 <= code < 600)
