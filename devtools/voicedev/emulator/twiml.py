"""Read TwiML the way Twilio does: which verbs run, and which URL each callback goes to with which
method. Parsed with ElementTree: the emulator must accept any TwiML a server answers, including
TwiML twilio-python would never generate.

URLs: relative values are resolved against the URL of the document they came from; the fragment
(`#rc=3&rp=all`, Twilio's connection overrides) is read here and never sent, as Twilio does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias
from urllib.parse import parse_qsl, urldefrag, urljoin, urlsplit
from xml.etree import ElementTree

METHODS = ("GET", "POST")
# Defaults of the reference pages: `statusCallbackEvent` is `call-completed`; for
# `recordingStatusCallbackEvent` the attribute table and the prose disagree (twilio-facts.md), the
# prose and the <Record> page say `completed`, which is what the emulator does when it is absent.
DEFAULT_STATUS_EVENTS = ("call-completed",)
# A <Dial> noun's statusCallbackEvent default (Twilio's voice docs): only `completed`.
DEFAULT_CALL_PROGRESS_EVENTS = ("completed",)
DEFAULT_RECORDING_EVENTS = ("completed",)
DEFAULT_INBOUND_TIMEOUT = 60
DEFAULT_ROUTING_ASSIGNMENT_TIMEOUT = 5
DEFAULT_RECORD_MAX_LENGTH = 3600
DUAL_CHANNEL_RECORD = ("record-from-answer-dual", "record-from-ringing-dual")
NO_RECORDING = ("do-not-record", "false", "")


class TwimlError(ValueError):
    """The answer is not TwiML Twilio could run (Twilio would play its application error)."""


@dataclass(frozen=True)
class Target:
    """Where Twilio sends a request: absolute URL without fragment, the method, and the connection
    overrides read from the fragment."""

    url: str
    method: str
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def retries(self) -> int:
        """`rc`: how many times Twilio retries a failed request (default 1, at most 5)."""
        try:
            return max(0, min(5, int(self.overrides.get("rc", "1"))))
        except ValueError:
            return 1

    @property
    def retry_policy(self) -> frozenset[str]:
        """`rp`: which failures are retried. Twilio's default retries connection failures only."""
        return frozenset(word for word in self.overrides.get("rp", "ct").split(",") if word)

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))


def resolve(
    document_url: str, value: str | None, method: str | None, *, default_url: bool = True
) -> Target | None:
    """The request Twilio makes for a URL attribute: relative to the document, fragment removed.
    No value: the current document URL when Twilio defaults to it (`action`), else None."""
    if value is None or not value.strip():
        if not default_url:
            return None
        value = document_url
    absolute = urljoin(document_url, value.strip())
    url, fragment = urldefrag(absolute)
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise TwimlError(f"{value!r} is not an http(s) URL Twilio could request")
    return Target(
        url=url, method=_method(method), overrides=dict(parse_qsl(fragment, keep_blank_values=True))
    )


def _method(value: str | None) -> str:
    if value is None or not value.strip():
        return "POST"
    upper = value.strip().upper()
    if upper not in METHODS:
        raise TwimlError(f"method {value!r} is not GET or POST")
    return upper


def _words(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    return tuple(value.replace(",", " ").split())


def _int(value: str | None, default: int, name: str) -> int:
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise TwimlError(f"{name}={value!r} is not an integer") from exc


def _short(text: str, limit: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --------------------------------------------------------------------------------------------------
# Verbs (only what changes what Twilio requests is modelled; every attribute is kept in `attrs`)


@dataclass(frozen=True)
class Say:
    text: str
    attrs: dict[str, str]

    def describe(self) -> str:
        return f"Say {_short(self.text)!r}"


@dataclass(frozen=True)
class Play:
    url: str
    attrs: dict[str, str]

    def describe(self) -> str:
        return "Play"


@dataclass(frozen=True)
class Pause:
    length: int

    def describe(self) -> str:
        return f"Pause {self.length}s"


@dataclass(frozen=True)
class Hangup:
    def describe(self) -> str:
        return "Hangup"


@dataclass(frozen=True)
class Reject:
    reason: str

    def describe(self) -> str:
        return f"Reject {self.reason}"


@dataclass(frozen=True)
class Redirect:
    target: Target

    def describe(self) -> str:
        return f"Redirect {self.target.method} {urlsplit(self.target.url).path}"


@dataclass(frozen=True)
class Record:
    action: Target
    recording_callback: Target | None
    recording_events: tuple[str, ...]
    max_length: int
    attrs: dict[str, str]

    def describe(self) -> str:
        events = "/".join(self.recording_events) if self.recording_callback else "no callback"
        return f"Record (max {self.max_length}s, action {urlsplit(self.action.url).path}, {events})"


@dataclass(frozen=True)
class Conversation:
    attrs: dict[str, str]
    status_callback: Target | None
    status_events: tuple[str, ...]
    recording_callback: Target | None
    recording_events: tuple[str, ...]
    record: str
    inbound_timeout: int
    routing_assignment_timeout: int

    @property
    def records(self) -> bool:
        return self.record not in NO_RECORDING

    @property
    def records_from_ringing(self) -> bool:
        return self.record.startswith("record-from-ringing")

    @property
    def recording_channels(self) -> str:
        return "2" if self.record in DUAL_CHANNEL_RECORD else "1"

    def describe(self) -> str:
        return "Conversation" + (f" record={self.record}" if self.records else "")


@dataclass(frozen=True)
class ConversationRelay:
    attrs: dict[str, str]
    languages: tuple[dict[str, str], ...]
    parameters: dict[str, str]

    def describe(self) -> str:
        return f"ConversationRelay {self.attrs.get('url', '')}"


@dataclass(frozen=True)
class OtherNoun:
    tag: str
    attrs: dict[str, str]

    def describe(self) -> str:
        return self.tag


Noun: TypeAlias = Conversation | ConversationRelay | OtherNoun


@dataclass(frozen=True)
class Connect:
    action: Target
    action_given: bool
    noun: Noun

    def describe(self) -> str:
        return f"Connect>{self.noun.describe()}"


@dataclass(frozen=True)
class Start:
    children: tuple[tuple[str, dict[str, str]], ...]

    def describe(self) -> str:
        inner = ",".join(
            tag + ("(" + ",".join(f"{k}" for k in attrs) + ")" if attrs else "")
            for tag, attrs in self.children
        )
        return f"Start>{inner}"


@dataclass(frozen=True)
class DialNoun:
    """A `<Number>` / `<Client>` / `<Sip>` of a `<Dial>`, with the dialled leg's status callback."""

    tag: str
    value: str
    status_callback: Target | None = None
    status_events: tuple[str, ...] = DEFAULT_CALL_PROGRESS_EVENTS


@dataclass(frozen=True)
class Dial:
    targets: tuple[tuple[str, str], ...]
    """(noun, value): ("Number", "+1555..."), ("Client", "alice"), ("Sip", ...), or ("", text)."""
    action: Target | None
    attrs: dict[str, str]
    nouns: tuple[DialNoun, ...] = ()

    def describe(self) -> str:
        from voicedev.emulator.output import mask

        shown = ",".join(mask(value) for _, value in self.targets)
        return f"Dial {shown}" + (f" (action {urlsplit(self.action.url).path})" if self.action else "")


@dataclass(frozen=True)
class Unknown:
    tag: str
    attrs: dict[str, str]

    def describe(self) -> str:
        return f"{self.tag} (not emulated)"


Verb: TypeAlias = Say | Play | Pause | Hangup | Reject | Redirect | Record | Connect | Start | Dial | Unknown


@dataclass(frozen=True)
class Document:
    """One TwiML answer and the URL it came from (relative URLs inside resolve against it)."""

    url: str
    xml: str
    verbs: tuple[Verb, ...]

    def describe(self) -> str:
        return " ; ".join(verb.describe() for verb in self.verbs) or "(empty)"

    def find(self, kind: type[Verb]) -> list[Verb]:
        return [verb for verb in self.verbs if isinstance(verb, kind)]


def parse_document(xml: str, document_url: str) -> Document:
    try:
        root = ElementTree.fromstring(xml)  # noqa: S314 - our own server's answer, in development
    except ElementTree.ParseError as exc:
        raise TwimlError(f"not XML: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(f"root element is <{root.tag}>, not <Response>")
    return Document(url=document_url, xml=xml, verbs=tuple(_verb(child, document_url) for child in root))


def _text(element: ElementTree.Element) -> str:
    return "".join(element.itertext()).strip()


def _verb(element: ElementTree.Element, url: str) -> Verb:
    attrs = dict(element.attrib)
    tag = element.tag
    if tag == "Say":
        return Say(text=_text(element), attrs=attrs)
    if tag == "Play":
        return Play(url=_text(element), attrs=attrs)
    if tag == "Pause":
        return Pause(length=_int(attrs.get("length"), 1, "Pause length"))
    if tag == "Hangup":
        return Hangup()
    if tag == "Reject":
        return Reject(reason=attrs.get("reason", "rejected"))
    if tag == "Redirect":
        target = resolve(url, _text(element), attrs.get("method"), default_url=False)
        if target is None:
            raise TwimlError("<Redirect> has no URL")
        return Redirect(target=target)
    if tag == "Record":
        return Record(
            action=_required(resolve(url, attrs.get("action"), attrs.get("method"))),
            recording_callback=resolve(
                url,
                attrs.get("recordingStatusCallback"),
                attrs.get("recordingStatusCallbackMethod"),
                default_url=False,
            ),
            recording_events=_words(attrs.get("recordingStatusCallbackEvent"), DEFAULT_RECORDING_EVENTS),
            max_length=_int(attrs.get("maxLength"), DEFAULT_RECORD_MAX_LENGTH, "maxLength"),
            attrs=attrs,
        )
    if tag == "Connect":
        return _connect(element, attrs, url)
    if tag == "Start":
        return Start(children=tuple((child.tag, dict(child.attrib)) for child in element))
    if tag == "Dial":
        targets = tuple((child.tag, _text(child)) for child in element)
        if not targets and _text(element):
            targets = (("", _text(element)),)
        nouns = tuple(
            DialNoun(
                tag=child.tag,
                value=_text(child),
                status_callback=resolve(
                    url,
                    child.attrib.get("statusCallback"),
                    child.attrib.get("statusCallbackMethod"),
                    default_url=False,
                ),
                status_events=_words(child.attrib.get("statusCallbackEvent"), DEFAULT_CALL_PROGRESS_EVENTS),
            )
            for child in element
        )
        return Dial(
            targets=targets,
            action=resolve(url, attrs.get("action"), attrs.get("method"), default_url=False),
            attrs=attrs,
            nouns=nouns,
        )
    return Unknown(tag=tag, attrs=attrs)


def _required(target: Target | None) -> Target:
    assert target is not None  # resolve() defaults to the document URL
    return target


def _connect(element: ElementTree.Element, attrs: dict[str, str], url: str) -> Connect:
    action = _required(resolve(url, attrs.get("action"), attrs.get("method")))
    children = list(element)
    if len(children) != 1:
        raise TwimlError(f"<Connect> must hold exactly one noun, found {len(children)}")
    child = children[0]
    noun_attrs = dict(child.attrib)
    noun: Noun
    if child.tag == "Conversation":
        noun = Conversation(
            attrs=noun_attrs,
            status_callback=resolve(
                url,
                noun_attrs.get("statusCallback"),
                noun_attrs.get("statusCallbackMethod"),
                default_url=False,
            ),
            status_events=_words(noun_attrs.get("statusCallbackEvent"), DEFAULT_STATUS_EVENTS),
            recording_callback=resolve(
                url,
                noun_attrs.get("recordingStatusCallback"),
                noun_attrs.get("recordingStatusCallbackMethod"),
                default_url=False,
            ),
            recording_events=_words(noun_attrs.get("recordingStatusCallbackEvent"), DEFAULT_RECORDING_EVENTS),
            record=noun_attrs.get("record", "do-not-record"),
            inbound_timeout=_int(noun_attrs.get("inboundTimeout"), DEFAULT_INBOUND_TIMEOUT, "inboundTimeout"),
            routing_assignment_timeout=_int(
                noun_attrs.get("routingAssignmentTimeout"),
                DEFAULT_ROUTING_ASSIGNMENT_TIMEOUT,
                "routingAssignmentTimeout",
            ),
        )
    elif child.tag == "ConversationRelay":
        noun = ConversationRelay(
            attrs=noun_attrs,
            languages=tuple(dict(item.attrib) for item in child if item.tag == "Language"),
            parameters={
                item.attrib.get("name", ""): item.attrib.get("value", "")
                for item in child
                if item.tag == "Parameter"
            },
        )
    else:
        noun = OtherNoun(tag=child.tag, attrs=noun_attrs)
    return Connect(action=action, action_given=bool(attrs.get("action")), noun=noun)
