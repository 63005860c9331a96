"""Harmony prompts for gpt-oss, and completions parsed back into channels.

    prompt = render_prompt(PromptSettings(reasoning_effort="low", date="2025-11-26"), "銀魂で、桂小太郎のあだ名は？")
    parsed = parse_completion(raw)      # .final, .analysis, .flags ("no_final", "truncated", ...)
    parsed = parse_server_reply(message["content"], message.get("reasoning_content"), stop_reason="stop")

`render_prompt` writes the harmony text itself (byte-for-byte what `openai-harmony`'s
`render_conversation_for_completion` decodes to; a test checks this against the library with the
local o200k vocabulary), so any tokenizer that knows the harmony special tokens (the real
gpt-oss one, or the BPE wikitune trains with them) can encode it, without the vocabulary file.

`render_with_chat_template` renders with the tokenizer's chat template instead (the published
gpt-oss template, which TRL ships and `sft` trains with). The two agree token for token on every
setting both accept (model identity, reasoning effort, date, no developer message) except one: the
template writes the developer instructions followed by "\n\n" before the message's `<|end|>`
(`# Instructions\n\nTEXT\n\n<|end|>`), openai-harmony writes `# Instructions\n\nTEXT<|end|>`. Only
harmony can leave the `Current date` line out or change the knowledge cutoff; the template always
prints both. So an SFT adapter is evaluated with the template (its training prompt), anything
else with openai-harmony's rendering (`wikitune.evaluate.run.resolve_prompt`).

`parse_completion` reads what a model generated after `<|start|>assistant`: a sequence of
messages `[<|start|>ROLE]<|channel|>CHANNEL<|message|>TEXT<|end|>|<|return|>|<|call|>`. It is
forgiving, because the seed's outputs were not clean: a completion that echoes the prompt (system
and user messages) yields only the assistant's messages; special tokens that harmony does not
define are dropped and flagged; a completion decoded with the special tokens stripped
("analysisThe user asks…assistantfinal答え") is recognised. The final answer is only ever the
final channel's text, never the prompt and never the analysis. `parse_server_reply` reads an
OpenAI-compatible server's reply (content, reasoning field, leaked special tokens) with the same parser.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from wikitune.errors import WikituneError

REASONING_EFFORTS = ("low", "medium", "high")
DEFAULT_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
DEFAULT_CUTOFF = "2024-06"
PROMPT_FORMATS = ("auto", "harmony", "chat_template")
CHANNELS_LINE = "# Valid channels: analysis, commentary, final. Channel must be included for every message."

# The harmony special tokens with their ids in o200k_harmony (tiktoken_ext.openai_public). The
# order matters: a corpus BPE (`gptoss.model.train_bpe_tokenizer`) gives them ids 0-8 in this order.
HARMONY_SPECIAL_TOKENS: dict[str, int] = {
    "<|startoftext|>": 199998,
    "<|endoftext|>": 199999,
    "<|return|>": 200002,
    "<|constrain|>": 200003,
    "<|channel|>": 200005,
    "<|start|>": 200006,
    "<|end|>": 200007,
    "<|message|>": 200008,
    "<|call|>": 200012,
}
KNOWN_TOKENS = frozenset(HARMONY_SPECIAL_TOKENS)
HARMONY_WORDS = ("system", "developer", "user", "assistant", "analysis", "commentary", "final")
"""The roles and channels harmony writes between its special tokens. Each is one token of o200k;
a tokenizer trained on a small corpus must keep them whole too, or a model can write
`<|channel|>fina…` and never reach the final channel."""
# Tokens that end the assistant's turn: stop generating there. `<|end|>` only ends one message
# (the analysis comes before the final), so it is not a stop token for a completion.
STOP_STRINGS = ("<|return|>", "<|call|>")
_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")
# A completion decoded with skip_special_tokens=True: "analysis…assistantfinal…" (the seed's table 2).
_STRIPPED = re.compile(r"^\s*(?:assistant)?(?:analysis)(?P<analysis>.*?)(?:assistant(?:commentary.*?assistant)?final(?P<final>.*))?$", re.S)


# ---- the chat template (TRL's gpt-oss template, as `sft` trains with) ----------------------------


def harmony_chat_template(training: bool = False) -> str:
    """The gpt-oss (harmony) chat template that TRL ships; `training=True` gives TRL's variant with
    `{% generation %}` markers around assistant output (for assistant-only loss masks)."""
    name = "gptoss_training.jinja" if training else "gptoss.jinja"
    return (files("trl") / "chat_templates" / name).read_text(encoding="utf-8")


def training_template(tokenizer: Any, date: str | None) -> str:
    """The chat template `sft` renders with: the tokenizer's own, else TRL's gpt-oss template, with
    its `Current date` pinned to `date` (None leaves the template's today)."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) and tokenizer.chat_template else harmony_chat_template()
    return pinned_template(template, date) if date else template


def pinned_template(template: str, date: str) -> str:
    """The harmony chat template with its `Current date` pinned (the published template prints
    today's date: a run resumed tomorrow would otherwise see other tokens)."""
    call = 'strftime_now("%Y-%m-%d")'
    if call not in template:
        return template
    return template.replace(call, json.dumps(date))


def check_reasoning_effort(effort: str, key: str = "reasoning_effort") -> str:
    """`effort` when it is a harmony reasoning effort (low, medium, high).

    Raises:
        WikituneError: any other value, naming `key`.
    """
    if effort not in REASONING_EFFORTS:
        raise WikituneError(f"{key} must be one of {', '.join(REASONING_EFFORTS)}, got {effort!r}")
    return effort


def developer_instructions(developer: str | None, context: str | None = None) -> str:
    """The developer message's text: the instructions, then the retrieved context (rag mode); "" when neither."""
    instructions = developer or ""
    if context:
        instructions = (instructions + "\n\n" if instructions else "") + context
    return instructions


def qa_messages(question: str, answer: str | None, developer_prompt: str | None) -> list[dict[str, str]]:
    """A harmony conversation: optional developer message, the user question, the answer in the
    final channel (the template puts assistant `content` there)."""
    messages = []
    if developer_prompt:
        messages.append({"role": "developer", "content": developer_prompt})
    messages.append({"role": "user", "content": question})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


@dataclass
class PromptSettings:
    """How a question becomes a harmony prompt."""

    reasoning_effort: str = "low"
    """low | medium | high: the `Reasoning:` line of the system message."""
    system_identity: str = DEFAULT_IDENTITY
    """First line of the system message."""
    knowledge_cutoff: str = DEFAULT_CUTOFF
    """`Knowledge cutoff:` line of the system message."""
    date: str | None = None
    """`Current date:` line (YYYY-MM-DD); None leaves it out (results stay reproducible)."""
    developer: str | None = "質問に日本語で簡潔に答えてください。答えだけを書いてください。"
    """Developer instructions (`# Instructions`); None or "" leaves the developer message out."""
    format: str = "auto"
    """auto | harmony | chat_template. harmony: wikitune's renderer (= openai-harmony), with the
    settings above. chat_template: the tokenizer's template, as `sft` renders (its `Current date`
    is `date`, else the adapter run's `current_date`, else today). auto: an SFT adapter run's own
    training prompt (chat_template with the run's system_prompt, developer_prompt,
    reasoning_effort and current_date, whatever the settings above say), otherwise harmony."""

    def __post_init__(self) -> None:
        if self.format not in PROMPT_FORMATS:
            raise WikituneError(f"prompt.format must be one of {', '.join(PROMPT_FORMATS)}, got {self.format!r}")
        if self.format == "chat_template" and self.knowledge_cutoff != DEFAULT_CUTOFF:
            raise WikituneError(f"the chat template always writes Knowledge cutoff: {DEFAULT_CUTOFF}; "
                                "use prompt.format=harmony to set prompt.knowledge_cutoff")
        check_reasoning_effort(self.reasoning_effort)
        if self.date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(self.date)):
            raise WikituneError(f"date must be YYYY-MM-DD or null, got {self.date!r}")


def render_prompt(settings: PromptSettings, question: str, *, context: str | None = None) -> str:
    """The harmony prompt text for one question, ending in `<|start|>assistant`.

    Args:
        settings (PromptSettings): system/developer content and reasoning effort.
        question (str): the user message.
        context (str | None): retrieved passages (rag mode), appended to the developer message.

    Returns:
        str: the prompt with harmony special tokens, ready for a tokenizer that knows them.
    """
    system = [settings.system_identity, f"Knowledge cutoff: {settings.knowledge_cutoff}"]
    if settings.date:
        system.append(f"Current date: {settings.date}")
    system_text = "\n".join(system) + f"\n\nReasoning: {settings.reasoning_effort}\n\n{CHANNELS_LINE}"
    parts = [f"<|start|>system<|message|>{system_text}<|end|>"]
    instructions = developer_instructions(settings.developer, context)
    if instructions:
        parts.append(f"<|start|>developer<|message|># Instructions\n\n{instructions}<|end|>")
    parts.append(f"<|start|>user<|message|>{question}<|end|>")
    parts.append("<|start|>assistant")
    return "".join(parts)


def render_with_chat_template(tokenizer: Any, settings: PromptSettings, question: str, *, context: str | None = None) -> str:
    """The prompt rendered by the chat template `sft` trains with (`training_template`), with the
    developer message, model identity, reasoning effort and a pinned date as `sft` renders them
    (`settings.date` None: the template's today)."""
    template = training_template(tokenizer, settings.date)
    instructions = developer_instructions(settings.developer, context)
    messages = ([{"role": "developer", "content": instructions}] if instructions else []) + [{"role": "user", "content": question}]
    kwargs: dict[str, Any] = {"reasoning_effort": settings.reasoning_effort}
    if settings.system_identity != DEFAULT_IDENTITY:
        kwargs["model_identity"] = settings.system_identity
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=template, **kwargs)


def render_conversation(settings: PromptSettings, messages: list[dict]) -> str:
    """The harmony prompt of a chat-API conversation (what `wikitune serve` feeds the model).

    As gpt-oss servers do, `system` and `developer` messages become the developer instructions
    (the harmony system message is built from `settings`); `user` and `assistant` turns follow in
    order, an assistant turn as a final-channel message. With one user message this equals
    `render_prompt(settings, question)` with those instructions.

    Raises:
        WikituneError: a role other than system, developer, user, assistant, or no user message.
    """
    instructions = [m["content"] for m in messages if m.get("role") in ("system", "developer") and m.get("content")]
    turns = [m for m in messages if m.get("role") not in ("system", "developer")]
    bad = sorted({str(m.get("role")) for m in turns} - {"user", "assistant"})
    if bad:
        raise WikituneError(f"unsupported message role(s) {', '.join(bad)}: use system, developer, user, assistant")
    if not any(m["role"] == "user" for m in turns):
        raise WikituneError("the conversation has no user message")
    head = render_prompt(PromptSettings(**{**settings.__dict__, "developer": "\n\n".join(instructions) or None}), "")
    head = head[: -len("<|start|>user<|message|><|end|><|start|>assistant")]
    body = []
    for m in turns:
        content = m.get("content") or ""
        if isinstance(content, list):  # [{"type": "text", "text": ...}]
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if m["role"] == "user":
            body.append(f"<|start|>user<|message|>{content}<|end|>")
        else:
            body.append(f"<|start|>assistant<|channel|>final<|message|>{content}<|end|>")
    return head + "".join(body) + "<|start|>assistant"


def render_prompt_with_harmony(settings: PromptSettings, question: str, *, context: str | None = None) -> str:
    """The same prompt rendered by `openai-harmony` (needs the o200k vocabulary: TIKTOKEN_ENCODINGS_BASE).

    Used to check `render_prompt`, and by users who want the library's exact rendering.
    """
    import openai_harmony as h

    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    system = (
        h.SystemContent.new()
        .with_model_identity(settings.system_identity)
        .with_knowledge_cutoff(settings.knowledge_cutoff)
        .with_reasoning_effort(h.ReasoningEffort(settings.reasoning_effort.capitalize()))
    )
    if settings.date:
        system = system.with_conversation_start_date(settings.date)
    messages = [h.Message.from_role_and_content(h.Role.SYSTEM, system)]
    instructions = developer_instructions(settings.developer, context)
    if instructions:
        messages.append(h.Message.from_role_and_content(h.Role.DEVELOPER, h.DeveloperContent.new().with_instructions(instructions)))
    messages.append(h.Message.from_role_and_content(h.Role.USER, question))
    tokens = enc.render_conversation_for_completion(h.Conversation.from_messages(messages), h.Role.ASSISTANT)
    return enc.decode(tokens)


@dataclass
class HarmonyMessage:
    role: str
    channel: str | None
    text: str
    terminator: str | None
    """The token that closed it (<|end|>, <|return|>, <|call|>), None when cut off."""


@dataclass
class ParsedCompletion:
    """A completion read back into channels."""

    final: str | None
    analysis: str | None
    commentary: str | None
    messages: list[HarmonyMessage]
    flags: list[str] = field(default_factory=list)


def _add(flags: list[str], flag: str) -> None:
    if flag not in flags:
        flags.append(flag)


def parse_completion(raw: str, *, stop_reason: str | None = None) -> ParsedCompletion:
    """Split a generated completion into harmony messages and pick out the channels.

    Args:
        raw (str): the completion exactly as generated (special tokens included), starting after
            the prompt's `<|start|>assistant`; a completion that repeats the prompt is fine too.
        stop_reason (str | None): how generation ended, when known: "stop" (a stop token),
            "length" (the token budget), "loop" (the loop guard). None infers it from the text.

    Returns:
        ParsedCompletion: `final` (None when no final-channel message), `analysis`, `commentary`,
        and flags among: no_final, truncated, loop_stopped, prompt_echo, unknown_token,
        malformed, special_tokens_stripped, empty (`parse_server_reply` adds leaked_harmony).
    """
    flags: list[str] = []
    if not raw.strip():
        return ParsedCompletion(None, None, None, [], ["empty", "no_final"] + (["truncated"] if stop_reason == "length" else []))
    if not _TOKEN.search(raw):
        return _parse_stripped(raw, stop_reason)

    messages: list[HarmonyMessage] = []
    role, channel, header, body = "assistant", None, "", []
    in_body = False
    pos = 0

    def close(terminator: str | None) -> None:
        nonlocal role, channel, header, body, in_body
        if in_body or "".join(body).strip():
            messages.append(HarmonyMessage(role or "assistant", channel, "".join(body), terminator))
        elif header.strip() and terminator is not None:
            _add(flags, "malformed")  # a header with no <|message|>
        role, channel, header, body, in_body = "assistant", None, "", [], False

    for match in _TOKEN.finditer(raw):
        text = raw[pos : match.start()]
        pos = match.end()
        token = match.group()
        if in_body:
            body.append(text)
        else:
            header += text
        if token not in KNOWN_TOKENS:
            _add(flags, "unknown_token")
            continue
        if token == "<|start|>":
            if in_body or header.strip():
                if in_body:
                    _add(flags, "malformed")  # a message not closed before the next one
                close(None if in_body else "<|end|>")
            role, header = "", ""
            in_body = False
            continue
        if token == "<|channel|>":
            if in_body:  # "<|channel|>" inside a body: a new message without <|start|>
                _add(flags, "malformed")
                close(None)
            role = (header.strip() or role or "assistant")
            header = ""
            continue
        if token == "<|constrain|>":
            continue
        if token == "<|message|>":
            if in_body:
                _add(flags, "malformed")
                body.append("")
                continue
            head = header.strip()
            if channel is None and head:
                if role == "":  # "<|start|>user<|message|>"
                    role = head.split()[0]
                else:  # "<|channel|>final<|message|>" or "<|channel|>commentary to=functions.x"
                    channel = head.split()[0]
            if role == "":
                role = "assistant"
            in_body, header = True, ""
            continue
        if token in ("<|end|>", "<|return|>", "<|call|>"):
            if not in_body:
                _add(flags, "malformed")
            close(token)
            continue
        # <|startoftext|> / <|endoftext|>: a document boundary; nothing after it belongs to the answer
        close(None)
        break
    else:
        tail = raw[pos:]
        if in_body:
            body.append(tail)
            close(None)
        elif (header + tail).strip():
            header += tail
            if role == "assistant" and not channel and not messages:
                messages.append(HarmonyMessage("assistant", None, header, None))
            else:
                _add(flags, "malformed")

    if any(m.role in ("system", "developer", "user") for m in messages):
        _add(flags, "prompt_echo")
    assistant = [m for m in messages if m.role.startswith("assistant")]

    def channel_text(name: str) -> str | None:
        texts = [m.text.strip() for m in assistant if m.channel == name]
        return "\n".join(texts) if texts else None

    finals = [m for m in assistant if m.channel == "final"]
    final = finals[-1].text.strip() if finals else None
    last = messages[-1] if messages else None
    ended = last is not None and last.terminator in ("<|return|>", "<|call|>")
    if stop_reason == "loop":
        _add(flags, "loop_stopped")
    elif stop_reason == "length" or (stop_reason is None and not ended and (last is None or last.terminator is None)):
        _add(flags, "truncated")
    if final is None:
        _add(flags, "no_final")
    return ParsedCompletion(final, channel_text("analysis"), channel_text("commentary"), messages, flags)


def parse_server_reply(content: str | None, reasoning: str | None = None, *, stop_reason: str | None = None) -> ParsedCompletion:
    """The channels of an OpenAI-compatible server's reply, read by `parse_completion` like any completion.

    A server is meant to separate the channels itself: `content` (chat) or the message's
    `output_text` (Responses) is the final channel, `reasoning` (`reasoning_content` / `reasoning`,
    Responses reasoning items) the analysis. Servers get this wrong in known ways, all read here:
    harmony special tokens leaked into the text (the whole completion in `content`, or a final
    answer with its `<|return|>` or `<|end|>` left on), flagged `leaked_harmony`; the special tokens
    stripped but the headers left (`analysis…assistantfinal…`), flagged `special_tokens_stripped`
    and `leaked_harmony`; no content at all (reasoning only, the budget spent), flagged `no_final`.

    Each part becomes harmony text and the whole goes through `parse_completion`, so a server's
    answer and an in-process one get the same channels and flags: a part with no special token is
    the body of its channel's message; a part whose first special token ends a message is that
    message's body (the server consumed the header); any other part is harmony text as it stands.

    Args:
        content (str | None): the server's text as sent; None or blank when it sent none.
        reasoning (str | None): its separate reasoning text as sent, if any.
        stop_reason (str | None): "stop", "length" or "loop", as for `parse_completion`.

    Returns:
        ParsedCompletion: as `parse_completion`'s, plus the flag `leaked_harmony`.
    """
    content = content if content and content.strip() else None
    reasoning = reasoning if reasoning and reasoning.strip() else None
    leaked = any(part is not None and _harmony_tokens(part) for part in (content, reasoning))
    if content is not None and reasoning is None and not leaked and _STRIPPED.match(content):
        parsed = parse_completion(content, stop_reason=stop_reason)
    else:
        final_end = "<|return|>" if stop_reason in (None, "stop") else ""  # cut by the budget or the loop guard: still open
        text = _as_message(reasoning, "analysis", "<|end|>") + _as_message(content, "final", final_end)
        parsed = parse_completion(text, stop_reason=stop_reason)
    if leaked or "special_tokens_stripped" in parsed.flags:
        _add(parsed.flags, "leaked_harmony")
    return parsed


def _harmony_tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text) if t in KNOWN_TOKENS]


def _as_message(text: str | None, channel: str, terminator: str) -> str:
    """One part of a server's reply as harmony text (see `parse_server_reply`)."""
    if text is None:
        return ""
    tokens = _harmony_tokens(text)
    if not tokens:
        return f"<|channel|>{channel}<|message|>{text}{terminator}"
    if tokens[0] in ("<|end|>", "<|return|>", "<|call|>"):  # "1年C組<|return|>": the body, with its terminator leaked
        return f"<|channel|>{channel}<|message|>{text}"
    return text


def _parse_stripped(raw: str, stop_reason: str | None) -> ParsedCompletion:
    """A completion with no special tokens: either special tokens were stripped when decoding
    ("analysis…assistantfinal…"), or a server already returned the final text alone."""
    flags: list[str] = []
    match = _STRIPPED.match(raw)
    if match:
        _add(flags, "special_tokens_stripped")
        analysis = match["analysis"].strip() or None
        final = match["final"].strip() if match["final"] is not None else None
        messages = [HarmonyMessage("assistant", "analysis", match["analysis"], None)]
        if final is not None:
            messages.append(HarmonyMessage("assistant", "final", match["final"], None))
    else:  # plain text with no channel: not a harmony final answer
        analysis, final = None, None
        messages = [HarmonyMessage("assistant", None, raw, None)]
        _add(flags, "malformed")
    if stop_reason == "loop":
        _add(flags, "loop_stopped")
    elif stop_reason == "length":
        _add(flags, "truncated")
    if final is None:
        _add(flags, "no_final")
    return ParsedCompletion(final, analysis, None, messages, flags)
